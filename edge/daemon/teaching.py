"""The daemon's side of teaching from the installer's page (edge.web.teach.Teacher): a confirmed crop becomes a field
reference on disk at once, the identifier takes it in between frames, and the sync agent uploads it.

Order of a confirmation: the crops are written to <data_dir>/references (durable before the page hears "taught"),
then the watcher rebuilds the identifier with them in the background (edge.daemon.catalog_watch), then the sync
trigger is written so the sync agent uploads them now rather than at its next round.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Callable

import cv2
import numpy as np

from edge.core.config import Config
from edge.core.datadir import DataDir
from edge.core.field_references import ReferenceStore, new_reference
from edge.core.ids import PRODUCT_ID
from edge.core.reference_check import check_crop
from edge.daemon.unknowns import RecentUnknowns
from edge.web.teach import Lesson, LessonError

log = logging.getLogger(__name__)
MAX_PRODUCTS = 20


def folded(text: str) -> str:
    """Lower case without accents: "Chá Mate" is found by "cha mate"."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def new_product_id(sku: str) -> str:
    """A product id from an installer's SKU: what PRODUCT_ID allows, the rest as '-'."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", folded(sku)).strip("-._")[:120]
    return slug if PRODUCT_ID.fullmatch(slug or "") else "field-" + (slug or "product")[:100]


def disputed(identifier, crops: list[bytes], product_id: str) -> str | None:
    """Why the first crop that could turn one product into another does (the catalog server's check, run here before
    the device uses it), or None."""
    for k, jpeg in enumerate(crops):
        verdict = check_crop(identifier, identifier.catalog.version, cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR),
                             product_id)
        if verdict.disputed:
            return f"crop {k + 1}: {verdict.reason}"
    return None


class Teaching:
    """`unknowns`: the pipeline's; `identifier`: a callable giving the identifier in use; `references_changed`: tells
    the catalog watcher to take the store's references in; `after_teaching`: wakes the sync agent (may be None)."""

    def __init__(self, config: Config, unknowns: RecentUnknowns, identifier: Callable, references_changed: Callable[[], None],
                 after_teaching: Callable[[], None] | None = None):
        self.config, self._unknowns, self._identifier = config, unknowns, identifier
        self._references_changed, self._after = references_changed, after_teaching
        self.store = ReferenceStore(DataDir(config.device.data_dir).references)
        self._lock = threading.Lock()  # one lesson at a time: two confirmations of one track do not both take it
        self._searchable: tuple[object, list[tuple[str, dict]]] = (None, [])  # (identifier, [(folded name + SKU, product)])

    def unknowns(self) -> list[dict]:
        return self._unknowns.recent()

    def crop(self, track_id: int, k: int) -> bytes | None:
        return self._unknowns.crop(track_id, k)

    def products(self, query: str) -> list[dict]:
        """The identifier's products (the catalog's and those taught as new) whose name or SKU holds the query."""
        identifier, needle = self._identifier(), folded(query.strip())
        if self._searchable[0] is not identifier:  # folded once per catalog (and per set of references), not per keypress
            self._searchable = (identifier, [(f"{folded(p.name)}\n{folded(p.sku)}", {"id": p.product_id, "sku": p.sku, "name": p.name})
                                             for p in identifier.products])
        found = (product for text, product in self._searchable[1] if needle in text)
        return [product for product, _ in zip(found, range(MAX_PRODUCTS))]

    def teach(self, lesson: Lesson) -> dict:
        with self._lock:
            if lesson.action == "not_a_product":
                if self._unknowns.take(lesson.track_id) is None:
                    raise LessonError(404, f"track {lesson.track_id} is not among the unknown tracks (named or gone since)")
                log.info("taught: track %d is not a product", lesson.track_id)
                return {"track_id": lesson.track_id, "action": lesson.action, "references": []}
            identifier = self._identifier()
            product, new = self._product(lesson, identifier)
            entry = self._unknowns.take(lesson.track_id)
            if entry is None:
                raise LessonError(404, f"track {lesson.track_id} is not among the unknown tracks (named or gone since)")
            chosen = [entry.crops[k][1] for k in (lesson.crops or range(len(entry.crops))) if k < len(entry.crops)]
            if not chosen:
                self._unknowns.put_back(entry)
                raise LessonError(422, f"track {lesson.track_id} has no crops {list(lesson.crops or [])}")
            if not lesson.override and (why := disputed(identifier, chosen, product["id"])):
                self._unknowns.put_back(entry)
                raise LessonError(409, f"{why}; look again, or teach it anyway (override)")
            references = []
            for jpeg in chosen:
                reference = new_reference(identifier.catalog.catalog_id, product["id"], product["sku"], product["name"],
                                          new_product=new, device_id=self.config.device.id, track_id=lesson.track_id,
                                          confirmed_by=lesson.by, guess=entry.guess.product_id if entry.guess else None)
                self.store.add(reference, jpeg)
                references.append(reference)
        log.info("taught: track %d is %s (%s)%s, %d field references %s", lesson.track_id, product["id"], product["name"],
                 " (new product)" if new else "", len(references), ",".join(r.reference_id for r in references))
        self._references_changed()
        if self._after is not None:
            self._after()
        return {"track_id": lesson.track_id, "action": lesson.action, "product": product,
                "references": [r.reference_id for r in references]}

    def _product(self, lesson: Lesson, identifier) -> tuple[dict, bool]:
        """The product a lesson names ({id, sku, name}) and whether the catalog lacks it."""
        by_id = {p.product_id: p for p in identifier.products}
        if lesson.action == "product":
            p = by_id.get(lesson.product_id)
            if p is None:
                raise LessonError(404, f"no product {lesson.product_id!r} in catalog {identifier.catalog.catalog_id}: search by name or "
                                       "SKU, or teach it as a new product")
            return {"id": p.product_id, "sku": p.sku, "name": p.name}, p.attributes.get("field", False)
        same_sku = [p for p in identifier.products if p.sku == lesson.sku]
        if same_sku:
            raise LessonError(409, f"SKU {lesson.sku!r} is {same_sku[0].name!r} ({same_sku[0].product_id}) already: "
                                   "choose that product instead")
        product_id = new_product_id(lesson.sku)
        if product_id in by_id:
            raise LessonError(409, f"product id {product_id!r} (from the SKU) is taken by {by_id[product_id].name!r}")
        return {"id": product_id, "sku": lesson.sku, "name": lesson.name}, True

