"""alt-profanity-check read without joblib or scikit-learn: the scores equal the real package's, and the joblib
reader refuses what it must (names outside the allow-list, arrays of Python objects, cut-short files)."""

from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest

from unidetox.measure.scorers import load_scorer
from unidetox.safe_pickle import JoblibArray, UnsafePickleError, safe_load_joblib

# predict_prob of the real package (alt-profanity-check 1.9.1 with scikit-learn 1.9.1 and joblib 1.6.0, run once in a
# throwaway virtual environment; neither is a dependency of this project)
REFERENCE = {
    "have a nice day": 0.05844726394294451,
    "you are an idiot": 0.9999987305385645,
    "fuck off": 0.9999999999975262,
    "The tropical storm moved rapidly west-northwestward.": 0.000773496349451349,
    "": 0.036375752016469504,
    "Shit happens, dude": 0.9996091599799891,
    "I hate all of them, they are disgusting animals": 0.9304879491950164,
    "WHAT THE HELL is this?!": 0.9913861357105456,
    "Café owners in São Paulo said the weather was fine": 0.007424483743685517,
    "a": 0.036375752016469504,
    "stupid stupid stupid": 0.9999818254267551,
    "asians are trying to take over the world with their karate skills": 0.043787933315814764,
}


def test_scores_equal_the_packages_own_predictions():
    if importlib.util.find_spec("profanity_check") is None:  # found, never imported (it would import scikit-learn)
        pytest.skip("alt-profanity-check is not installed")
    scorer = load_scorer("alt-profanity-check")
    got = scorer.score(list(REFERENCE))
    # The same float64 operations as scikit-learn's, in another order: a text's decision value sums at most a few
    # dozen products of unit-normalised tf-idf weights and SVM weights (|f| < 10), a few ulps of rounding apart
    # (~1e-15); the calibration's exp(a f + c) scales that by at most |a f| ~ 30, and the mean of 5 folds adds ulps:
    # 1e-12 absolute is far above that and far below any difference that would change a score's meaning.
    np.testing.assert_allclose(got, list(REFERENCE.values()), rtol=0, atol=1e-12)
    assert scorer.name == "alt-profanity-check" and scorer.version.startswith("alt-profanity-check==1.9.1;sha256:")


def _joblib_stream(state: dict, payload: bytes) -> bytes:
    """A joblib-format stream by hand: a NumpyArrayWrapper header built from `state`, its raw bytes, STOP."""
    body = pickle.dumps(state, protocol=2)[2:-1]  # the dict's opcodes, without PROTO and STOP
    return b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81" + body + b"b" + payload + b"."


ALLOWED = {("joblib.numpy_pickle", "NumpyArrayWrapper"): JoblibArray}


@pytest.mark.parametrize("order", ["C", "F"])
def test_joblib_arrays_are_read_in_either_order(tmp_path, order):
    a = np.arange(6, dtype="<f8").reshape(2, 3)
    raw = (a if order == "C" else a.T).tobytes()  # Fortran order stores the transpose's rows
    state = {"shape": (2, 3), "order": order, "dtype": "<f8", "numpy_array_alignment_bytes": 16}
    path = tmp_path / "a.joblib"
    path.write_bytes(_joblib_stream(state, b"\x03" + b"\x00" * 3 + raw))  # 3 bytes of padding, announced first
    np.testing.assert_array_equal(safe_load_joblib(path, ALLOWED), a)


def test_joblib_reader_refuses_objects_unknown_names_and_short_files(tmp_path):
    path = tmp_path / "x.joblib"
    path.write_bytes(_joblib_stream({"shape": (1,), "order": "C", "dtype": "O"}, b""))
    with pytest.raises(UnsafePickleError, match="array of Python objects"):
        safe_load_joblib(path, ALLOWED)
    path.write_bytes(_joblib_stream({"shape": (4,), "order": "C", "dtype": "<f8"}, b"\x00" * 8))
    with pytest.raises(UnsafePickleError, match="ends inside an array"):
        safe_load_joblib(path, ALLOWED)
    path.write_bytes(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R.")
    with pytest.raises(UnsafePickleError, match="refusing to unpickle os.system"):
        safe_load_joblib(path, ALLOWED)
    path.write_bytes(b"\x1f\x8b" + b"\x00" * 10)
    with pytest.raises(UnsafePickleError, match="compressed"):
        safe_load_joblib(path, ALLOWED)
