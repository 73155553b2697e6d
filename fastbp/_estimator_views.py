"""``coefs_`` and ``intercepts_`` of fastbp's scikit-learn estimators: views into the
fitted network's parameters, in scikit-learn's orientation, that write through."""
import numbers

import numpy as np
from sklearn.exceptions import NotFittedError


class ParameterList(list):
    """``coefs_`` / ``intercepts_``: a list of views into the network's parameters.

    Writing into an item (``coefs_[0][...] = W``) or assigning one (``coefs_[0] = W``)
    changes the network; the latter copies W in after a shape check. The list's length
    is the network's number of layers and cannot change.
    """

    def __init__(self, name, views):
        super().__init__(views)
        self._name = name

    def __setitem__(self, index, value):
        if not isinstance(index, numbers.Integral):
            raise TypeError(f"{self._name} items are assigned one at a time, by an "
                            f"integer index; got {index!r}")
        view = self[index]
        view[...] = _checked_item(self._name, index % len(self), view, value)

    def _fixed_length(self, *args, **kwargs):
        raise TypeError(f"{self._name} holds one array per layer of network_; its length "
                        "cannot change")

    append = extend = insert = pop = remove = clear = __delitem__ = __iadd__ = _fixed_length
    sort = reverse = _fixed_length

    def __reduce__(self):
        # pickle and copy.deepcopy give a plain list of arrays (copies, not views)
        return list, (list(self),)


def _checked_item(name, i, view, value):
    """value as an array of view's shape (ValueError naming ``name[i]`` otherwise)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}[{i}] must hold real numbers; got dtype {arr.dtype}")
    if arr.shape != view.shape:
        raise ValueError(f"{name}[{i}] must have shape {view.shape}; got {arr.shape}")
    return arr


class FittedViews:
    """The ``coefs_`` and ``intercepts_`` properties of an estimator with a ``network_``."""

    def _fitted_network(self, name):
        if not hasattr(self, "network_"):
            raise NotFittedError(f"{name} exists once {type(self).__name__} is fitted: it "
                                 "is a view of network_")
        return self.network_

    def _assign(self, name, views, values):
        values = list(values)
        if len(values) != len(views):
            raise ValueError(f"{name} needs {len(views)} arrays, one per layer; got "
                             f"{len(values)}")
        checked = [_checked_item(name, i, v, a) for i, (v, a) in enumerate(zip(views, values))]
        for view, arr in zip(views, checked):  # all checked before any is written
            view[...] = arr

    @property
    def coefs_(self):
        """List of weight matrices, ``coefs_[i]`` of shape (n_in, n_out): transposed
        views of ``network_.weights``. Writes into them, item assignment
        (``coefs_[i] = W``) and assignment of a whole list copy into the network."""
        return ParameterList("coefs_", [W.T for W in self._fitted_network("coefs_").weights])

    @coefs_.setter
    def coefs_(self, values):
        self._assign("coefs_", self.coefs_, values)

    @property
    def intercepts_(self):
        """List of bias vectors, ``intercepts_[i]`` of shape (n_out,): views of
        ``network_.biases``; assignable as ``coefs_``."""
        return ParameterList("intercepts_", self._fitted_network("intercepts_").biases)

    @intercepts_.setter
    def intercepts_(self, values):
        self._assign("intercepts_", self.intercepts_, values)
