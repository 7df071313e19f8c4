"""A small ONNX graph builder: named nodes and constants, and other models absorbed whole."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from numpy.typing import ArrayLike
from onnx import TensorProto, helper, numpy_helper

#: Opset of the default ONNX domain: the dynamo exporter's lowest, read by onnxruntime 1.14+.
OPSET = 18
#: Opset of the ``ai.onnx.ml`` domain (skl2onnx's tree ensembles).
ML_OPSET = 3

_ELEM = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


class Graph:
    """Nodes, constants and inputs of one ONNX graph, built in order.

    Every node gets a fresh output name from a hint, so subgraphs of several detectors
    (an ensemble's members) never collide.

    Parameters
    ----------
    dtype : numpy dtype
        The float type of the graph's input and of its computation (float32 or float64);
        float constants made by :meth:`const` are cast to it.
    """

    def __init__(self, dtype: Any) -> None:
        self.dtype = np.dtype(dtype)
        self.elem = _ELEM[self.dtype]
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.functions: list[onnx.FunctionProto] = []
        self.opsets: dict[str, int] = {"": OPSET}
        self._used: set[str] = set()

    def name(self, hint: str) -> str:
        """A tensor or node name not used yet, made from ``hint``."""
        name, i = hint, 1
        while name in self._used:
            i += 1
            name = f"{hint}_{i}"
        self._used.add(name)
        return name

    def const(self, value: ArrayLike, hint: str = "const", dtype: Any = None) -> str:
        """An initializer holding ``value``; float values are cast to the graph's dtype
        unless ``dtype`` is given."""
        arr = np.asarray(value)
        if dtype is not None:
            arr = arr.astype(dtype)
        elif arr.dtype.kind == "f":
            arr = arr.astype(self.dtype)
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.array(arr, order="C"), name))
        return name

    def ints(self, values: ArrayLike, hint: str = "ints") -> str:
        """An int64 initializer (shapes, axes, indices)."""
        return self.const(np.asarray(values, dtype=np.int64), hint, dtype=np.int64)

    def op(
        self,
        op_type: str,
        *inputs: str,
        hint: str | None = None,
        outputs: int = 1,
        domain: str = "",
        **attrs: Any,
    ) -> Any:
        """Append a node; return its output name (a tuple of names when ``outputs > 1``)."""
        base = hint or op_type.lower()
        names = [self.name(base if outputs == 1 else f"{base}_{i}") for i in range(outputs)]
        node = helper.make_node(
            op_type, list(inputs), names, name=self.name(f"node_{base}"), domain=domain, **attrs
        )
        self.nodes.append(node)
        return names[0] if outputs == 1 else tuple(names)

    def cast(self, x: str, elem: int, hint: str = "cast") -> str:
        """``x`` cast to the ONNX element type ``elem``."""
        return self.op("Cast", x, hint=hint, to=elem)

    def absorb(self, model: onnx.ModelProto, inputs: dict[str, str], prefix: str) -> list[str]:
        """Append all of ``model``'s graph, its inputs fed by tensors of this graph.

        Parameters
        ----------
        model : onnx.ModelProto
            A model with the same opset for the default domain as this graph.
        inputs : dict
            The model's input names, each mapped to the tensor of this graph feeding it.
        prefix : str
            Prepended to every name of the model (made unique here).

        Returns
        -------
        list of str
            The names, in this graph, of the model's outputs.
        """
        prefix = self.name(prefix) + "/"
        for imp in model.opset_import:
            domain = imp.domain or ""
            if domain == "" and imp.version != self.opsets[""]:
                raise ValueError(
                    f"cannot absorb a model of opset {imp.version} into opset {self.opsets['']}"
                )
            self.opsets[domain] = max(self.opsets.get(domain, 0), imp.version)
        model = onnx.compose.add_prefix(model, prefix)
        graph = model.graph
        for inp in graph.input:
            original = inp.name[len(prefix) :]
            if original not in inputs:
                continue  # an initializer also listed as an input
            self.nodes.append(
                helper.make_node("Identity", [inputs[original]], [inp.name], name=inp.name + "/in")
            )
        self.nodes.extend(graph.node)
        self.initializers.extend(graph.initializer)
        self.functions.extend(model.functions)
        self._used.update(n.name for n in graph.node)
        self._used.update(o for n in graph.node for o in n.output)
        self._used.update(t.name for t in graph.initializer)
        self._used.update(i.name for i in graph.input)
        return [o.name for o in graph.output]

    def model(
        self,
        input_name: str,
        n_features: int,
        outputs: list[tuple[str, int, list[Any]]],
        *,
        doc: str = "",
    ) -> onnx.ModelProto:
        """The finished model: one input ``(batch, n_features)`` and the named outputs.

        ``outputs`` holds ``(tensor name, ONNX element type, shape)`` triples; the tensors
        are renamed by Identity nodes only where a name differs.
        """
        x = helper.make_tensor_value_info(input_name, self.elem, ["batch", n_features])
        outs = [helper.make_tensor_value_info(n, e, s) for n, e, s in outputs]
        graph = helper.make_graph(self.nodes, "anomalia", [x], outs, self.initializers)
        graph.doc_string = doc
        opsets = [helper.make_opsetid(d, v) for d, v in sorted(self.opsets.items())]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="anomalia")
        model.functions.extend(self.functions)
        model.ir_version = min(model.ir_version, 9)  # what onnxruntime 1.16+ reads
        return model
