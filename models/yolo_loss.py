"""The YOLOv5 training loss, written from the published recipe (v6.x `ComputeLoss`).

Targets are rows [image index, class, x, y, w, h] with xywh normalised to the
input. Each target is assigned to the anchors whose shape is within
`anchor_t`× of its own, in its grid cell and the two nearest neighbouring
cells; boxes are scored by CIoU, objectness by BCE against the (detached) IoU,
classes by BCE (skipped for a one-class detector, where objectness is all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from models.yolov5 import Detect


@dataclass(frozen=True)
class LossWeights:
    box: float = 0.05
    obj: float = 1.0
    cls: float = 0.5
    anchor_t: float = 4.0
    level_balance: tuple[float, ...] = (4.0, 1.0, 0.4)  # P3 (small objects) … P5


def ciou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU of matching rows of two [N, 4] xywh tensors."""
    (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.unbind(-1), box2.unbind(-1)
    b1x1, b1x2, b1y1, b1y2 = x1 - w1 / 2, x1 + w1 / 2, y1 - h1 / 2, y1 + h1 / 2
    b2x1, b2x2, b2y1, b2y2 = x2 - w2 / 2, x2 + w2 / 2, y2 - h2 / 2, y2 + h2 / 2
    inter = (torch.min(b1x2, b2x2) - torch.max(b1x1, b2x1)).clamp(0) * (torch.min(b1y2, b2y2) - torch.max(b1y1, b2y1)).clamp(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = torch.max(b1x2, b2x2) - torch.min(b1x1, b2x1)
    ch = torch.max(b1y2, b2y2) - torch.min(b1y1, b2y1)
    c2 = cw ** 2 + ch ** 2 + eps
    rho2 = ((x2 - x1) ** 2 + (y2 - y1) ** 2)
    v = (4 / math.pi ** 2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


class YoloLoss:
    """Callable: (raw per-level outputs of a training-mode YOLOv5, targets) → (loss × batch, [box, obj, cls])."""

    def __init__(self, head: Detect, imgsz: int, weights: LossWeights = LossWeights()):
        self.head, self.w = head, weights
        self.nl, self.na, self.nc = head.nl, head.na, head.nc
        scale = 3 / self.nl
        self.box_gain = weights.box * scale
        self.obj_gain = weights.obj * (imgsz / 640) ** 2 * scale
        self.cls_gain = weights.cls * self.nc / 80 * scale
        self.bce = nn.BCEWithLogitsLoss()

    def __call__(self, preds: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lbox, lobj, lcls = (torch.zeros((), device=targets.device) for _ in range(3))
        for i, (pi, (b, a, gj, gi, tbox, anchors, tcls)) in enumerate(zip(preds, self.build_targets(preds, targets))):
            tobj = torch.zeros(pi.shape[:4], dtype=pi.dtype, device=pi.device)
            if b.shape[0]:
                ps = pi[b, a, gj, gi]
                pxy = ps[:, :2].sigmoid() * 2 - 0.5
                pwh = (ps[:, 2:4].sigmoid() * 2) ** 2 * anchors
                iou = ciou(torch.cat((pxy, pwh), 1), tbox)
                lbox = lbox + (1.0 - iou).mean()
                # several targets can land on one anchor of one cell: the best IoU is the target, whichever thread
                # writes last (a plain indexed write picks by timing, and a seeded run would not reproduce)
                cell = ((b * tobj.shape[1] + a) * tobj.shape[2] + gj) * tobj.shape[3] + gi
                tobj = tobj.flatten().scatter_reduce(0, cell, iou.detach().clamp(0).to(tobj.dtype), "amax").view(tobj.shape)
                if self.nc > 1:
                    t = torch.zeros_like(ps[:, 5:])
                    t[torch.arange(len(tcls)), tcls] = 1.0
                    lcls = lcls + self.bce(ps[:, 5:], t)
            lobj = lobj + self.bce(pi[..., 4], tobj) * self.w.level_balance[i]
        parts = torch.stack((lbox * self.box_gain, lobj * self.obj_gain, lcls * self.cls_gain))
        return parts.sum() * preds[0].shape[0], parts.detach()

    def build_targets(self, preds: list[torch.Tensor], targets: torch.Tensor) -> list[tuple]:
        """Per level: image, anchor and cell indices of each assigned target, its box relative to the cell, anchor, class."""
        na, nt, device = self.na, targets.shape[0], targets.device
        gain = torch.ones(7, device=device)
        anchor_ids = torch.arange(na, device=device).float().view(na, 1).repeat(1, nt)
        targets = torch.cat((targets.repeat(na, 1, 1), anchor_ids[..., None]), 2)  # [na, nt, 7]
        g = 0.5
        offsets_all = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], device=device).float() * g
        out = []
        for i in range(self.nl):
            anchors, shape = self.head.anchors[i], preds[i].shape
            gain[2:6] = torch.tensor(shape, device=device)[[3, 2, 3, 2]].float()
            t = targets * gain
            if nt:
                ratio = t[..., 4:6] / anchors[:, None]
                t = t[torch.max(ratio, 1 / ratio).max(2)[0] < self.w.anchor_t]
                gxy = t[:, 2:4]
                gxi = gain[[2, 3]] - gxy
                left, up = ((gxy % 1 < g) & (gxy > 1)).T  # the neighbouring cells nearest the centre
                right, down = ((gxi % 1 < g) & (gxi > 1)).T
                j = torch.stack((torch.ones_like(left), left, up, right, down))
                t = t.repeat((5, 1, 1))[j]
                offsets = (torch.zeros_like(gxy)[None] + offsets_all[:, None])[j]
            else:
                t, offsets = targets[0], torch.zeros((0, 2), device=device)
            b, c = t[:, 0].long(), t[:, 1].long()
            gxy, gwh, a = t[:, 2:4], t[:, 4:6], t[:, 6].long()
            gij = (gxy - offsets).long()
            gi, gj = gij[:, 0].clamp(0, shape[3] - 1), gij[:, 1].clamp(0, shape[2] - 1)
            out.append((b, a, gj, gi, torch.cat((gxy - torch.stack((gi, gj), 1), gwh), 1), anchors[a], c))
        return out
