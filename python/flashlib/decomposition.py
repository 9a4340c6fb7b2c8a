"""Matrix decompositions with scikit-learn's interface: PCA and TruncatedSVD,
computed by libflashlib. PCA's covariance_eigh solver runs on a CUDA GPU
(device='cuda', or 'auto' for large float32 data); the other solvers and
TruncatedSVD run on the CPU, and device='cuda' raises UnsupportedError for
them."""

import numbers

import numpy as np

from ._base import (
    ClassNamePrefixFeaturesOutMixin,
    DenseFloatTagsMixin,
    FlashlibEstimator,
    TransformerMixin,
    check_array,
    host_view,
    new_host,
    unchanged_on_error,
)

__all__ = ["PCA", "TruncatedSVD"]

_VECTOR_ATTRS = {
    "components_": "matrix",
    "explained_variance_": "vector",
    "explained_variance_ratio_": "vector",
    "singular_values_": "vector",
}


class _Decomposition(DenseFloatTagsMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, FlashlibEstimator):
    """What PCA and TruncatedSVD share: fit through the C model, transform and
    inverse_transform through the library."""

    def fit(self, X, y=None):
        """Fits the model on X (n_samples x n_features)."""
        with unchanged_on_error(self):
            self._fl_fit_model(X)
        return self

    def transform(self, X):
        """Projects X on the components (n_samples x n_components, X's dtype)."""
        self._fl_check_fitted()
        k = self.components_.shape[0]
        return self._fl_predict_like(X, "transform", lambda X: (X.shape[0], k), lambda X: X.dtype)

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)

    def inverse_transform(self, X):
        """Maps transformed data (n_samples x n_components) back to the
        input space."""
        model = self._fl_check_fitted()
        X = check_array(X, name="X")
        Xa, Xkeep = host_view(X)
        out, arr = new_host((X.shape[0], self.components_.shape[1]), X.dtype)
        with self._fl_session(model.ctx):
            model.inverse_transform(Xa, out)
        return arr

    @property
    def _n_features_out(self):
        return self.components_.shape[0]


class PCA(_Decomposition):
    """Principal component analysis, a drop-in for sklearn.decomposition.PCA
    computed by libflashlib.

    n_components : int, float in (0, 1) or None, default=None
    copy : bool, default=True
        Accepted for compatibility; flashlib never modifies X.
    whiten : bool, default=False
    svd_solver : {'auto', 'full', 'covariance_eigh', 'arpack', 'randomized'}
        'auto' follows scikit-learn's rule; 'arpack' computes the exact
        truncated decomposition (n_components < min(n_samples, n_features)).
    tol : float, default=0.0 (accepted; the exact path is exact)
    iterated_power : int or 'auto', default='auto'
    n_oversamples : int, default=10
    power_iteration_normalizer : {'auto', 'QR', 'LU', 'none'}, default='auto'
    random_state : None, int or numpy RandomState, default=None
    device : {'auto', 'cpu', 'cuda', 'cuda:N'}, default='auto'
        Decompositions run on the CPU ('auto' never uses a GPU for them yet).

    Attributes: components_, explained_variance_, explained_variance_ratio_,
    singular_values_, mean_, noise_variance_, n_components_, n_samples_,
    n_features_in_ (and feature_names_in_ for named columns).
    """

    _fl_algo = "pca"
    _fl_python_only = frozenset({"copy", "device"})
    _fl_attrs = {
        **_VECTOR_ATTRS,
        "mean_": "vector",
        "noise_variance_": "float",
        "n_components_": "int",
        "n_samples_": "int",
        "n_features_in_": "int",
    }

    def __init__(
        self,
        n_components=None,
        *,
        copy=True,
        whiten=False,
        svd_solver="auto",
        tol=0.0,
        iterated_power="auto",
        n_oversamples=10,
        power_iteration_normalizer="auto",
        random_state=None,
        device="auto",
    ):
        self.n_components = n_components
        self.copy = copy
        self.whiten = whiten
        self.svd_solver = svd_solver
        self.tol = tol
        self.iterated_power = iterated_power
        self.n_oversamples = n_oversamples
        self.power_iteration_normalizer = power_iteration_normalizer
        self.random_state = random_state
        self.device = device

    def _fl_param_values(self, X):
        values = super()._fl_param_values(X)
        nc = self.n_components
        if isinstance(nc, numbers.Real) and not isinstance(nc, (bool, numbers.Integral)) and nc >= 1:
            raise ValueError(f"n_components={nc!r}: a float must be in (0, 1) (a variance fraction); give "
                             "a whole number of components as an int")
        return values

    def score_samples(self, X):
        """Log-likelihood of each sample under the probabilistic PCA model."""
        out = self._fl_predict_like(X, "score_samples", lambda X: (X.shape[0], 1), lambda X: X.dtype)
        return out.reshape(-1)

    def score(self, X, y=None):
        """Average log-likelihood of the samples."""
        return self._fl_apply(X, lambda model, X: model.score(host_view(X)[0]))

    def get_covariance(self):
        """Covariance of the data under the generative model (numpy)."""
        self._fl_check_fitted()
        comp, ev = self.components_, self.explained_variance_
        if self.whiten:
            comp = comp * np.sqrt(ev[:, np.newaxis])
        diff = np.where(ev > self.noise_variance_, ev - self.noise_variance_, 0.0)
        cov = (comp.T * diff) @ comp
        cov.flat[:: len(cov) + 1] += self.noise_variance_
        return cov

    def get_precision(self):
        """Precision matrix (inverse covariance) of the generative model."""
        return np.linalg.inv(self.get_covariance())


class TruncatedSVD(_Decomposition):
    """Dimensionality reduction by truncated SVD (no centring), a drop-in for
    sklearn.decomposition.TruncatedSVD computed by libflashlib.

    n_components : int, default=2
    algorithm : {'randomized', 'arpack'}, default='randomized'
        'arpack' computes the exact truncated SVD.
    n_iter : int, default=5
    n_oversamples : int, default=10
    power_iteration_normalizer : {'auto', 'QR', 'LU', 'none'}, default='auto'
    random_state : None, int or numpy RandomState, default=None
    tol : float, default=0.0 (accepted; the exact path is exact)
    device : {'auto', 'cpu', 'cuda', 'cuda:N'}, default='auto'

    Attributes: components_, explained_variance_, explained_variance_ratio_,
    singular_values_, n_features_in_.
    """

    _fl_algo = "truncated_svd"
    _fl_attrs = {**_VECTOR_ATTRS, "n_features_in_": "int"}

    def __init__(
        self,
        n_components=2,
        *,
        algorithm="randomized",
        n_iter=5,
        n_oversamples=10,
        power_iteration_normalizer="auto",
        random_state=None,
        tol=0.0,
        device="auto",
    ):
        self.n_components = n_components
        self.algorithm = algorithm
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.power_iteration_normalizer = power_iteration_normalizer
        self.random_state = random_state
        self.tol = tol
        self.device = device
