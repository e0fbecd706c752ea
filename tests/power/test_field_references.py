"""Field references taught on the page, through power cuts (tools/powercut_fs.py): a reference whose add() returned is
there whole after the cut, one cut mid-add leaves nothing visible (and clean() takes its leftovers), a state change
is the old state or the new, never a broken file."""

from __future__ import annotations

import random

import pytest

from edge.core.field_references import ReferenceStore, new_reference
from tests.power.conftest import needs_fuse

pytestmark = needs_fuse


def reference(track_id: int):
    return new_reference("shelf", "cha-mate-limao", "7891234000011", "Chá Mate Limão", new_product=True, device_id="aisle-7",
                         track_id=track_id, confirmed_by="installer")


@pytest.mark.parametrize("tear", [False, True])
def test_a_reference_that_was_added_survives_the_cut_whole(power, tear):
    store = ReferenceStore(power.mountpoint / "data" / "references")  # the folder made on first use, as on a new device
    added = []
    for track in range(3):
        r = reference(track)
        store.add(r, bytes(random.Random(track).randbytes(20_000)))
        added.append(r)
    store.mark_uploaded(added[0].reference_id)
    power.cut(tear=tear)
    power.start()
    after = ReferenceStore(power.mountpoint / "data" / "references")
    states = {r.reference_id: r.state for r in after.all()}
    assert states == {r.reference_id: "uploaded" if r is added[0] else "pending" for r in added}
    assert all(after.crop(r.reference_id) == random.Random(r.track_id).randbytes(20_000) for r in added)


def test_a_cut_in_the_middle_of_an_add_leaves_nothing_visible(power):
    root = power.mountpoint / "references"
    store = ReferenceStore(root)
    store.add(reference(1), b"first")
    staging = root / ".half.tmp"  # what add() had written when the power went: its staging folder, not yet renamed
    staging.mkdir()
    (staging / "crop.jpg").write_bytes(b"half")
    power.cut(tear=True)
    power.start()
    store = ReferenceStore(root)
    assert [r.track_id for r in store.all()] == [1]
    store.clean()
    assert sorted(p.name for p in root.iterdir()) == [store.all()[0].reference_id]
