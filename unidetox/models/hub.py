"""One clear sentence for each way the Hugging Face Hub refuses a model or data set.

transformers and datasets wrap the Hub's errors (``GatedRepoError``, ``RepositoryNotFoundError``,
``LocalEntryNotFoundError``, ``OfflineModeIsEnabled``...) in ``OSError``/``ConnectionError``; `hub_problem`
walks the exception chain and names the case. A token is only ever read from the environment and is
never printed.
"""

from __future__ import annotations

import os

TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
_GATED = ("GatedRepoError",)
_MISSING = ("RepositoryNotFoundError", "DatasetNotFoundError", "RevisionNotFoundError", "HFValidationError")
_OFFLINE = ("LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectError", "ConnectionError", "TimeoutException")


def _chain(err: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        out.append(err)
        err = err.__cause__ or err.__context__
    return out


def has_token() -> bool:
    return any(os.environ.get(v) for v in TOKEN_VARS)


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_problem(err: BaseException) -> str:
    """'gated' | 'missing' | 'offline' | 'other' for an error raised while fetching from the Hub."""
    chain = _chain(err)
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain).lower()
    if names & set(_GATED) or "gated repo" in text or "is a gated repository" in text:
        return "gated"
    if (
        names & set(_MISSING)
        or "is not a local folder or a valid repository" in text
        or "doesn't exist on the hub" in text
    ):
        return "missing"
    if names & set(_OFFLINE) or "offline" in text or "couldn't connect" in text or "couldn't reach" in text:
        return "offline"
    return "other"


def explain(kind: str, repo: str, err: BaseException) -> str:
    """The message for `repo` (kind 'model' or 'dataset') that the Hub did not provide, with the fix."""
    url = f"https://huggingface.co/{'datasets/' if kind == 'dataset' else ''}{repo}"
    problem = hub_problem(err)
    if problem == "gated":
        if has_token():
            return (f"{kind} {repo!r} is gated on the Hugging Face Hub and the token in HF_TOKEN has no access to it. "
                    f"Fix: accept its licence at {url} with the account that owns the token (approval can take a "
                    "while), or set HF_TOKEN to a token of an approved account.")  # fmt: skip
        return (f"{kind} {repo!r} is gated on the Hugging Face Hub and no token is set. Fix: accept its licence at "
                f"{url}, create a read token at https://huggingface.co/settings/tokens and export HF_TOKEN=<token> "
                "(it is read from the environment only, never written).")  # fmt: skip
    if problem == "missing":
        private = "" if has_token() else " (or is private: set HF_TOKEN)"
        return (f"{kind} {repo!r} does not exist on the Hugging Face Hub{private} and is not a local directory. "
                "Fix: check the id's spelling (owner/name) or give the path of a local directory.")  # fmt: skip
    if problem == "offline":
        how = "the Hub is switched off (HF_HUB_OFFLINE=1)" if offline() else "the Hugging Face Hub cannot be reached"
        return (f"{kind} {repo!r} is not in the local Hugging Face cache and {how}. Fix: fetch it once where "
                f"there is network (`hf download {repo}{' --repo-type dataset' if kind == 'dataset' else ''}`, same "
                "HF_HOME), or use local files.")  # fmt: skip
    return (f"the Hugging Face Hub did not provide {kind} {repo!r} ({type(err).__name__}: {err}). Fix: check network "
            "access and the id.")  # fmt: skip


__all__ = ["explain", "has_token", "hub_problem", "offline"]
