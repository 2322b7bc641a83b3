"""Whether a repository is on the Hub, asked through huggingface_hub's API, which is replaced
here: offline, a repository that exists, one that does not (404), a gated one, a network
failure and a Hub that does not answer. Nothing reaches the network."""

import time

import huggingface_hub
import pytest

from keras_mlrs.errors import HubError
from keras_mlrs.hub.repository import NOT_CHECKED, NOT_PUBLISHED, PUBLISHED, hub_status

pytestmark = pytest.mark.backend_free  # answers of a stand-in API: no Keras numerics

REPOS = ["org/ben19-kbranch-focal", "org/ben19-kbranch-bce", "org/ben19-kbranch-gated"]


def hub_error(name):
    """huggingface_hub's own error class ``name``, made without the HTTP response it is built from."""
    cls = getattr(huggingface_hub.errors, name)
    return cls.__new__(cls)


@pytest.fixture
def hub(monkeypatch):
    """`HfApi.model_info` answering from ``hub.answers`` (repo -> "exists", an exception, or
    seconds to hang), the calls recorded; online (HF_HUB_OFFLINE unset)."""
    class Stand:
        answers, calls = {}, []

    def model_info(self, repo, timeout=None, **kwargs):
        Stand.calls.append((repo, timeout))
        answer = Stand.answers[repo]
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, float):
            time.sleep(answer)
        return object()

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    return Stand


def test_offline_nothing_is_asked(hub, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert hub_status(REPOS) == (dict.fromkeys(REPOS, NOT_CHECKED), "HF_HUB_OFFLINE is set")
    assert hub.calls == [] and NOT_CHECKED == "not checked: offline"


def test_existing_missing_and_gated_repositories(hub):
    hub.answers = {REPOS[0]: "exists", REPOS[1]: hub_error("RepositoryNotFoundError"),
                   REPOS[2]: hub_error("GatedRepoError")}
    assert hub_status([f"hf://{r}" for r in REPOS], timeout=3) == (
        {REPOS[0]: PUBLISHED, REPOS[1]: NOT_PUBLISHED, REPOS[2]: PUBLISHED}, "")
    assert sorted(hub.calls) == sorted((r, 3) for r in REPOS)  # each request with the short timeout


def test_a_network_failure_or_a_silent_hub_leaves_them_not_checked_without_waiting(hub):
    hub.answers = {REPOS[0]: "exists", REPOS[1]: ConnectionError("no route"), REPOS[2]: 30.0}
    start = time.monotonic()
    states, why = hub_status(REPOS, timeout=0.1)
    assert time.monotonic() - start < 1.5  # the hanging request is not waited for
    assert states == {REPOS[0]: PUBLISHED, REPOS[1]: NOT_CHECKED, REPOS[2]: NOT_CHECKED}
    assert why == "the Hub could not be reached: ConnectionError"
    hub.answers = dict.fromkeys(REPOS, 30.0)
    assert hub_status(REPOS, timeout=0.05) == (dict.fromkeys(REPOS, NOT_CHECKED), "the Hub did not answer within 0.1 s")


def test_bad_ids_are_refused_before_asking(hub):
    with pytest.raises(HubError, match="is not a Hub repository id"):
        hub_status(["not an id"])
    assert hub.calls == []
