"""What a GPU would show of a training step, found on the CPU.

On a GPU, a step that creates a tensor without a device (a CPU kernel and a copy that waits for
the GPU), indexes with a Python list (an index tensor copied from the host), reads a device
value on the host (``.item()``, ``.cpu()``, ``bool(t)``, ``nonzero``, boolean-mask indexing) or
builds a tensor from Python numbers makes the host wait for the device. On the CPU all of that
runs and nothing waits, so these tools watch for the calls themselves:

* :class:`DeviceDiscipline`, a ``TorchFunctionMode`` for eager code. It keeps track of which
  tensors stand for device tensors (the model's parameters and buffers, what a factory makes
  with a device, what is copied with ``.to(device)``, and what is computed from any of these);
  every other tensor (the dataloader's batch, factories without a device) lives on the host.
  Inside a window (``watching()``) it records each offending call with the line of code that
  made it, and it counts the host-to-device copies (``.to(device)`` or ``copy_`` of a host
  tensor), which must not grow with the batch.
* :func:`scan_graph`, the same rules read off the FX graphs that dynamo captures (compiled
  code never reaches a ``TorchFunctionMode``): factories without ``device``, list indices,
  ``item``/``tolist``/``nonzero``.
"""
import operator
import traceback
import weakref
from contextlib import contextmanager
from typing import Dict, List, Tuple

import torch
from torch.overrides import TorchFunctionMode

Tensor = torch.Tensor
FACTORIES = {
    torch.arange, torch.empty, torch.zeros, torch.ones, torch.full, torch.eye, torch.rand,
    torch.randn, torch.randint, torch.randperm, torch.linspace, torch.logspace, torch.tensor,
    torch.as_tensor, torch.asarray, torch.scalar_tensor, torch.empty_strided, torch.tril_indices,
    torch.triu_indices
}
FROM_HOST_DATA = {torch.tensor, torch.as_tensor, torch.asarray}
HOST_READS = {
    Tensor.item, Tensor.tolist, Tensor.cpu, Tensor.numpy, Tensor.__bool__, Tensor.__int__,
    Tensor.__float__, Tensor.__index__, Tensor.nonzero, torch.nonzero, Tensor.argwhere,
    torch.argwhere, Tensor.masked_select, torch.masked_select, Tensor.unique, torch.unique
}
INDEXING = {Tensor.__getitem__, Tensor.__setitem__, Tensor.index_put_, Tensor.index_put}
TRANSFERS = {Tensor.to, Tensor.cuda}
HERE = __file__


def _is_list_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index, )
    return any(isinstance(item, list) for item in items)


def _is_bool_index(index) -> bool:
    items = index if isinstance(index, (tuple, list)) else (index, )
    return any(torch.is_tensor(item) and item.dtype in (torch.bool, torch.uint8) for item in items)


def _tensors(obj):
    if torch.is_tensor(obj):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value)
    elif hasattr(obj, 'all_items'):  # mmengine data elements
        for _, value in obj.all_items():
            yield from _tensors(value)


def _target_device(args, kwargs):
    """The device a ``.to(...)`` / ``.cuda()`` call names, or None (a dtype-only cast)."""
    if 'device' in kwargs:
        return kwargs['device']
    for arg in args[1:]:
        if isinstance(arg, (torch.device, str)):
            return arg
        if torch.is_tensor(arg):
            return arg.device
    return None


def _caller() -> str:
    """The innermost frame outside torch and this file: the line that made the call."""
    for frame in reversed(traceback.extract_stack()[:-3]):
        path = frame.filename
        if path == HERE or '/torch/' in path:
            continue
        return f'{path}:{frame.lineno} ({frame.name}): {frame.line}'
    return '?'


class DeviceDiscipline(TorchFunctionMode):
    """Record the calls of a step that would make a GPU wait for the host, or the host for it.

    Enter it before the first step (it learns where tensors live as they are made; mark the
    model with ``as_device``) and open a window around the steps to check with ``watching()``. ``violations``
    lists ``(rule, call)`` pairs; ``copies`` counts host-to-device copies per window and
    ``blocking_copies`` those that were not ``non_blocking``.
    """

    def __init__(self):
        super().__init__()
        self._device: Dict[int, weakref.ref] = {}
        self.window = False
        self.violations: List[Tuple[str, str]] = []
        self.copies = 0
        self.blocking_copies = 0

    # where tensors live --------------------------------------------------------------------
    def as_device(self, *objs):
        """Mark every tensor in ``objs`` (tensors, nested lists/dicts, modules: their
        parameters and buffers) as a device tensor; returns ``objs[0]``."""
        for obj in objs:
            if isinstance(obj, torch.nn.Module):
                obj = [*obj.parameters(), *obj.buffers()]
            for tensor in _tensors(obj):
                self._device[id(tensor)] = weakref.ref(tensor)
        return objs[0]

    def as_host(self, *objs):
        """Mark every tensor in ``objs`` (nested lists/dicts/data samples) as a host tensor."""
        for obj in objs:
            for tensor in _tensors(obj):
                self._device.pop(id(tensor), None)
        return objs[0]

    def on_host(self, tensor) -> bool:
        ref = self._device.get(id(tensor))
        return ref is None or ref() is not tensor

    @contextmanager
    def watching(self):
        self.window, self.copies, self.blocking_copies = True, 0, 0
        try:
            yield self
        finally:
            self.window = False

    def _record(self, rule: str, func) -> None:
        if self.window:
            self.violations.append((rule, f'{getattr(func, "__qualname__", func)} at {_caller()}'))

    # the mode ------------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = list(_tensors((args, kwargs)))
        device_inputs = [t for t in inputs if not self.on_host(t)]
        if func in FACTORIES:
            if kwargs.get('device') is None:
                self._record('factory without an explicit device', func)
            if func in FROM_HOST_DATA and args and not torch.is_tensor(args[0]):
                self._record('tensor built from Python/numpy data (a blocking host copy)', func)
        elif func in HOST_READS or (func is torch.where and len(args) == 1):
            if device_inputs:
                self._record('device value read on the host', func)
        elif func in INDEXING and len(args) > 1:
            index = args[1]
            if _is_list_index(index):
                self._record('index with a Python list', func)
            if _is_bool_index(index) and device_inputs:
                self._record('boolean-mask index (its size needs the host)', func)
        out = func(*args, **kwargs)
        self._track(func, args, kwargs, inputs, device_inputs, out)
        return out

    def _track(self, func, args, kwargs, inputs, device_inputs, out) -> None:
        outputs = list(_tensors(out))
        if not outputs:
            return
        if func in FACTORIES:
            on_device = kwargs.get('device') is not None  # torch's default device: the CPU
        elif func in TRANSFERS and _target_device(args, kwargs) is not None:
            on_device = True
            if inputs and self.on_host(inputs[0]) and self.window:
                self.copies += 1
                self.blocking_copies += not kwargs.get('non_blocking', False)
        elif func is Tensor.copy_:
            if self.window and not self.on_host(args[0]) and self.on_host(args[1]):
                self.copies += 1
                self.blocking_copies += not kwargs.get('non_blocking', False)
            on_device = not self.on_host(args[0])
        else:
            on_device = bool(device_inputs)  # computed from a device tensor
        (self.as_device if on_device else self.as_host)(*outputs)


@contextmanager
def outside(mode: TorchFunctionMode):
    """Leave ``mode`` for the body (compiled functions: dynamo would trace the mode)."""
    from torch.overrides import _pop_mode_temporarily
    with _pop_mode_temporarily() as popped:
        assert popped is mode
        yield


# compiled graphs --------------------------------------------------------------------------
FX_FACTORIES = {f.__name__ for f in FACTORIES}
FX_HOST_READS = {'item', 'tolist', 'cpu', 'numpy', 'nonzero', 'argwhere', 'masked_select',
                 'unique', '__bool__'}


def scan_graph(gm: torch.fx.GraphModule) -> List[str]:
    """The nodes of a dynamo graph that would make a GPU wait: tensor factories without a
    ``device``, indices that are Python lists, reads of values on the host."""
    problems = []
    for node in gm.graph.nodes:
        name = getattr(node.target, '__name__', str(node.target))
        where = node.meta.get('stack_trace', '').strip().splitlines()[-2:] or ['?']
        if node.op == 'call_function' and node.target in FACTORIES \
                and node.kwargs.get('device') is None:
            problems.append(f'factory without device: {name} at {" | ".join(where)}')
        if node.op in ('call_function', 'call_method') and name in FX_HOST_READS:
            problems.append(f'host read: {name} at {" | ".join(where)}')
        if node.op == 'call_function' and node.target in (operator.getitem, operator.setitem) \
                and len(node.args) > 1 and _is_list_index(node.args[1]):
            problems.append(f'list index at {" | ".join(where)}')
    return problems


class GraphRecorder:
    """A ``torch.compile`` backend that keeps every graph dynamo hands it, then runs it
    eagerly (or through ``then``, e.g. ``'aot_eager'``)."""

    def __init__(self, then=None):
        self.graphs: List[torch.fx.GraphModule] = []
        self.then = then

    def __call__(self, gm, example_inputs):
        self.graphs.append(gm)
        if self.then is None:
            return gm.forward
        from torch._dynamo.backends.registry import lookup_backend
        return lookup_backend(self.then)(gm, example_inputs)

    def problems(self) -> List[str]:
        return [problem for gm in self.graphs for problem in scan_graph(gm)]
