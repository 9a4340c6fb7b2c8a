"""Clustering estimators with scikit-learn's interface."""

import numbers
import warnings

import numpy as np

from ._base import (
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    DenseFloatTagsMixin,
    FlashlibEstimator,
    TransformerMixin,
    check_array,
    check_sample_weight,
    host_view,
    unchanged_on_error,
    validate_X,
)
from . import _errors, _lib

__all__ = ["KMeans"]

def _random_state_object(random_state):
    """A RandomState for callables that want one (init=callable)."""
    if random_state is None:
        return np.random.mtrand._rand
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return np.random.RandomState(int(random_state))
    return random_state


class KMeans(DenseFloatTagsMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin,
             FlashlibEstimator):
    """K-Means clustering (Lloyd's algorithm), a drop-in for
    sklearn.cluster.KMeans computed by libflashlib on the CPU or a CUDA GPU.

    Parameters are scikit-learn's, with its defaults, plus flashlib's own.
    Their domains are checked by the C library's parameter table when `fit`
    runs; a bad value raises ValueError with the library's explanation.

    n_clusters : int, default=8
    init : {'k-means++', 'random'}, array-like of shape (n_clusters, n_features)
        or callable(X, n_clusters, random_state) -> array, default='k-means++'
    n_init : 'auto' or int, default='auto'
        Runs with different seeds; the lowest inertia wins. 'auto' is 1 for
        k-means++ and explicit centres, 10 for 'random'.
    max_iter : int, default=300
    tol : float, default=1e-4
        Relative to the mean feature variance of X, as in scikit-learn.
    verbose : int, default=0
        > 0 prints the library's log and progress to stderr.
    random_state : None, int or numpy RandomState, default=None
    copy_x : bool, default=True
        Accepted for compatibility; flashlib never modifies X.
    algorithm : {'lloyd', 'elkan'}, default='lloyd'
        Both run Lloyd's algorithm (same result).
    metric : {'euclidean', 'cosine', 'dot'}, default='euclidean'
        flashlib's: 'cosine' is spherical k-means (unit-norm centres),
        'dot' assigns by maximum inner product.
    precision : {'auto', 'fp32', 'tf32', 'bf16', 'fp16'}, default='auto'
        Arithmetic of the GPU distance step; the CPU computes in X's dtype.
    device : {'auto', 'cpu', 'cuda', 'cuda:N'}, default='auto'
        'auto' uses a GPU when one is usable, else the CPU.

    Attributes
    ----------
    cluster_centers_ : ndarray (n_clusters, n_features), X's dtype
    labels_ : ndarray (n_samples,) int32
    inertia_ : float
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str, when X has string column names
    """

    _fl_algo = "kmeans"
    _fl_python_only = frozenset({"copy_x", "device"})
    _fl_internal = {
        "n_local_trials": "k-means++ candidates per centre: scikit-learn's KMeans has no such "
        "parameter (it fixes 2 + floor(ln k)), which is the C default",
    }
    _fl_attrs = {
        "cluster_centers_": "matrix",
        "labels_": "vector",
        "inertia_": "float",
        "n_iter_": "int",
        "n_features_in_": "int",
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        init="k-means++",
        n_init="auto",
        max_iter=300,
        tol=1e-4,
        verbose=0,
        random_state=None,
        copy_x=True,
        algorithm="lloyd",
        metric="euclidean",
        precision="auto",
        device="auto",
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.copy_x = copy_x
        self.algorithm = algorithm
        self.metric = metric
        self.precision = precision
        self.device = device

    # -- parameters -----------------------------------------------------------------
    def _fl_param_values(self, X):
        values = super()._fl_param_values(X)
        init = self.init
        if callable(init):
            init = init(X, self.n_clusters, random_state=_random_state_object(self.random_state))
        if not isinstance(init, str):
            # Explicit centres: the C library checks their shape and values.
            values["init"] = check_array(init, name="init", dtype=[X.dtype.type])
            if self.n_init != "auto" and self.n_init != 1:
                warnings.warn(
                    "Explicit initial center position passed: performing only one init in "
                    f"{type(self).__name__} instead of n_init={self.n_init}.",
                    RuntimeWarning,
                    stacklevel=3,
                )
        verbose = self.verbose
        if isinstance(verbose, numbers.Integral):
            values["verbose"] = min(int(verbose), 3)  # the C table's levels; more is as verbose
        return values

    # -- scikit-learn methods -------------------------------------------------------------
    def fit(self, X, y=None, sample_weight=None):
        """Computes k-means clustering of X (n_samples x n_features)."""
        with unchanged_on_error(self):
            X = validate_X(self, X, reset=True)
            sw = check_sample_weight(sample_weight, X)
            values = self._fl_param_values(X)
            Xa, Xkeep = host_view(X)
            wa, wkeep = host_view(sw) if sw is not None else (None, None)
            with self._fl_session(self._fl_context()) as ctx:
                model = _lib.Model.create(ctx, self._fl_algo, self._fl_params(ctx, values))
                model.fit(Xa, None, wa)
                self._fl_install(model)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fits, then returns the training labels (labels_)."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def predict(self, X):
        """Index (int32) of the closest centre for each row of X."""
        return self._fl_predict_like(X, "predict", lambda X: (X.shape[0],), lambda X: np.int32)

    def transform(self, X):
        """Distances to every centre (n_samples x n_clusters, X's dtype):
        Euclidean distance, 1 - cosine similarity, or minus the inner product."""
        self._fl_check_fitted()
        k = self.cluster_centers_.shape[0]
        return self._fl_predict_like(X, "transform", lambda X: (X.shape[0], k), lambda X: X.dtype)

    def fit_transform(self, X, y=None, sample_weight=None):
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X, y=None, sample_weight=None):
        """Opposite of the inertia of X under the fitted centres."""

        def run(model, X):
            sw = check_sample_weight(sample_weight, X)
            Xa, Xkeep = host_view(X)
            wa, wkeep = host_view(sw) if sw is not None else (None, None)
            return model.score(Xa, None, wa)

        return self._fl_apply(X, run)

    @property
    def _n_features_out(self):
        return self.cluster_centers_.shape[0]
