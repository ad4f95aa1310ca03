"""The champion/challenger election: the README's rule as a table, on the pure function and
on a real (SQLite) Model Registry."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from helpers import aliases as registered_aliases
from mlflow import MlflowClient

from deepfake_detection import registry


def _version(number: int, valid: float | None, digest: str = "d", degenerate: bool = False):
    tags = {"dataset_digest": digest, "degenerate": str(degenerate).lower()}
    if valid is not None:
        tags["valid_roc_auc"] = f"{valid:.6f}"
        tags["test_roc_auc"] = f"{1 - valid:.6f}"  # opposite order: choosing on test would show
    return SimpleNamespace(version=str(number), tags=tags)


# (case, valid scores of versions 1.., current champion, hand-picked, among, expected champion, challenger)
ELECTIONS = [
    ("first version", [0.6], None, "", 0, "1", None),
    ("worse newer version is the challenger", [0.6, 0.5], "1", "", 0, "1", "2"),
    ("better newer version takes over; no stale challenger", [0.6, 0.5, 0.7], "1", "", 0, "3", None),
    ("tie keeps the earlier version", [0.6, 0.7, 0.7], "2", "", 0, "2", "3"),
    ("chosen on valid, not test", [0.9, 0.8], None, "", 0, "1", "2"),
    ("hand-picked holds against older better ones", [0.6, 0.5, 0.7], "2", "2", 3, "2", "3"),
    ("hand-picked loses to a later better one", [0.6, 0.5, 0.7, 0.55], "2", "2", 3, "4", None),
    ("hand-picked beats a later worse one", [0.6, 0.5, 0.7, 0.45], "2", "2", 3, "2", "4"),
]


@pytest.mark.parametrize(
    ("case", "scores", "champion", "picked", "among", "expected", "challenger"),
    ELECTIONS,
    ids=[e[0] for e in ELECTIONS],
)
def test_election_table(case, scores, champion, picked, among, expected, challenger):
    versions = [_version(i + 1, score) for i, score in enumerate(scores)]
    election = registry.elect(versions, champion, dataset_digest="d", hand_picked=picked, among=among)
    assert election == registry.Election(champion=expected, challenger=challenger)


# When clean and degraded disagree: (case, (clean valid, worst degraded valid or None) of versions
# 1.., current champion, expected champion). The rule: the mean of the two, where every candidate
# has both; the clean score alone where one does not.
ROBUST_ELECTIONS = [
    ("fragile 0.98 / 0.77 loses to robust 0.93 / 0.90", [(0.98, 0.77), (0.93, 0.90)], "1", "2"),
    ("robust but mediocre 0.80 / 0.79 loses to 0.99 / 0.70", [(0.99, 0.70), (0.80, 0.79)], "1", "1"),
    ("equal means: the earlier version", [(0.96, 0.80), (0.90, 0.86)], "1", "1"),
    ("clean ties are settled by the worst case", [(0.95, 0.70), (0.95, 0.80)], "1", "2"),
    ("a version without degraded scores: clean for all", [(0.98, 0.60), (0.95, None)], "2", "1"),
    ("worst case never beats clean for an unscored champion", [(0.90, None), (0.85, 0.85)], "1", "1"),
]


@pytest.mark.parametrize(
    ("case", "scores", "champion", "expected"), ROBUST_ELECTIONS, ids=[e[0] for e in ROBUST_ELECTIONS]
)
def test_election_weighs_the_worst_degraded_valid_score(case, scores, champion, expected):
    versions = []
    for number, (clean, worst) in enumerate(scores, start=1):
        version = _version(number, clean)
        if worst is not None:
            version.tags[registry.VALID_WORST] = f"{worst:.6f}"
            version.tags["test_worst_degraded_roc_auc"] = f"{1 - worst:.6f}"  # choosing on test would show
        versions.append(version)
    assert registry.elect(versions, champion, dataset_digest="d").champion == expected


def test_election_other_data_and_degenerate_versions():
    other = [_version(1, 0.6), _version(2, 0.99, digest="other")]
    assert registry.elect(other, "1", dataset_digest="other") == registry.Election("1", "2")  # only by hand
    degenerate = [_version(1, 0.5, degenerate=True), _version(2, 0.4, degenerate=True)]
    assert registry.elect(degenerate, None, dataset_digest="d") == registry.Election(None, "2")  # no champion
    after = [*degenerate, _version(3, 0.55)]
    assert registry.elect(after, None, dataset_digest="d") == registry.Election("3", None)
    unscored = [_version(1, None)]  # promoted by hand without scores: it stays champion
    assert registry.elect(unscored, "1", dataset_digest="d") == registry.Election("1", None)


def test_the_registry_follows_the_election(tmp_path):
    """The same rule on a real registry: aliases, one version per stage, hand promotion, degenerate."""
    client = MlflowClient()
    name = registry.registered_name("rules")
    client.create_registered_model(name)

    def register(valid: float, digest: str = "d", degenerate: bool = False) -> tuple[str, str | None]:
        tags = _version(0, valid, digest, degenerate).tags
        version = client.create_model_version(name, (tmp_path / "model").as_uri(), tags=tags)
        return str(version.version), registry.settle(client, "rules", digest).champion

    def state() -> tuple[dict, dict]:
        stages = {str(v.version): v.current_stage for v in client.search_model_versions(f"name = '{name}'")}
        by_stage = {stage: sorted(n for n, s in stages.items() if s == stage) for stage in set(stages.values())}
        return registered_aliases(client, name), by_stage

    # (valid score, digest, degenerate, version, champion after, aliases after, versions per stage after)
    steps = [
        (0.50, "d", True, "1", None, {"challenger": "1"}, {"Staging": ["1"]}),
        (0.60, "d", False, "2", "2", {"champion": "2"}, {"Archived": ["1"], "Production": ["2"]}),
        (
            0.55,
            "d",
            False,
            "3",
            "2",
            {"champion": "2", "challenger": "3"},
            {"Archived": ["1"], "Production": ["2"], "Staging": ["3"]},
        ),
        (0.70, "d", False, "4", "4", {"champion": "4"}, {"Archived": ["1", "2", "3"], "Production": ["4"]}),
        (
            0.65,
            "d",
            False,
            "5",
            "4",
            {"champion": "4", "challenger": "5"},
            {"Archived": ["1", "2", "3"], "Production": ["4"], "Staging": ["5"]},
        ),
        (
            0.99,
            "other",
            False,
            "6",
            "4",
            {"champion": "4", "challenger": "6"},
            {"Archived": ["1", "2", "3", "5"], "Production": ["4"], "Staging": ["6"]},
        ),
    ]
    for valid, digest, degenerate, version, champion, aliases, stages in steps:
        assert register(valid, digest, degenerate) == (version, champion), version
        assert state() == (aliases, stages), version

    registry.promote("rules", 3, "champion", by_hand=True)  # a person prefers version 3 (0.55)
    assert register(0.58) == ("7", "7")  # beats the hand-picked 0.55; versions 4 and 5 no longer count
    assert register(0.56) == ("8", "7")
    aliases, stages = state()
    assert (
        aliases == {"champion": "7", "challenger": "8"} and stages["Production"] == ["7"] and stages["Staging"] == ["8"]
    )


def test_registry_pages_say_what_a_model_is_how_to_load_it_and_how_good(tmp_path):
    client = MlflowClient()
    name = registry.registered_name("npr")
    client.create_registered_model(name)
    version = str(client.create_model_version(name, (tmp_path / "model").as_uri()).version)
    test = {"roc_auc": 0.982, "roc_auc_ci_low": 0.972, "roc_auc_ci_high": 0.99, "accuracy": 0.9, "f1": 0.91}
    registry.describe(client, name, "npr", version, 64, "abc123", "run42", {"roc_auc": 0.981}, test)
    model = client.get_registered_model(name)
    for needed in ("npr", "64x64", "fake (1)", "models:/deepfake-npr@champion", "models:/deepfake-npr/Production"):
        assert needed in model.description, needed
    assert model.tags == {
        "architecture": "npr",
        "positive_class": "fake",
        "task": "real-vs-fake images",
        "image_size": "64",
    }
    described = client.get_model_version(name, version).description
    assert described.startswith("test ROC-AUC 0.982 [95 % CI 0.972, 0.990]; test accuracy 0.900; test f1 0.910")
    for needed in ("valid ROC-AUC 0.981", "dataset digest abc123", "run run42", "positive class: fake (1)"):
        assert needed in described, needed


def test_a_user_who_may_not_release_takes_the_election_only_as_far_as_the_challenger():
    versions = [_version(1, 0.6), _version(2, 0.5), _version(3, 0.7)]
    election = registry.elect(versions, "1", dataset_digest="d")
    assert election == registry.Election("3", None)
    assert registry.within_reach(election, "1", versions) == registry.Election("1", "3", held_back="3")
    first = [_version(1, 0.6)]  # no champion yet: the first version waits as challenger
    assert registry.within_reach(registry.elect(first, None, dataset_digest="d"), None, first) == registry.Election(
        None, "1", held_back="1"
    )
    worse = registry.elect(versions[:2], "1", dataset_digest="d")  # the champion stays anyway: nothing held back
    assert registry.within_reach(worse, "1", versions[:2]) == worse == registry.Election("1", "2")
