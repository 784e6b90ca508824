from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from storage.shard_plan import PlanItem, plan_shards, split_of

_items = st.lists(
    st.builds(
        PlanItem,
        id=st.text("abc0123", min_size=1, max_size=6),
        split=st.sampled_from(["train", "val", "test"]),
        sha256=st.text("0123456789abcdef", min_size=4, max_size=4),
    ),
    unique_by=lambda item: item.id,
    max_size=60,
)


@given(_items, st.integers(min_value=1, max_value=9))
def test_every_item_once_in_fixed_size_shards(items: list[PlanItem], size: int) -> None:
    shards = plan_shards("image", items, size)
    placed = [item for shard in shards for item in shard.items]
    assert sorted(placed) == sorted(item.id for item in items)
    for shard in shards:
        assert 1 <= len(shard.items) <= size
        assert shard.shard_id.startswith(f"{shard.split}-")
    assert plan_shards("image", list(reversed(items)), size) == shards  # order of listing does not matter


@given(_items, st.integers(min_value=1, max_value=9), st.text("xyz", min_size=7, max_size=7))
def test_adding_to_one_split_leaves_other_splits_alone(items: list[PlanItem], size: int, new_id: str) -> None:
    before = plan_shards("image", items, size)
    after = plan_shards("image", [*items, PlanItem(new_id, "train", "ffff")], size)
    assert [s for s in before if s.split != "train"] == [s for s in after if s.split != "train"]


def test_changed_content_changes_only_its_shard_fingerprint() -> None:
    items = [PlanItem(f"{i:03d}", "train", "aa") for i in range(6)]
    before = plan_shards("image", items, 3)
    items[4] = PlanItem("004", "train", "bb")
    after = plan_shards("image", items, 3)
    assert before[0] == after[0]
    assert before[1].items == after[1].items and before[1].fingerprint != after[1].fingerprint


def test_split_of_reads_back_a_split_whose_name_has_a_hyphen() -> None:
    assert split_of("train-00000") == "train"
    assert split_of("test-clean-00012") == "test-clean"
    assert split_of("dev-other-extra-00003") == "dev-other-extra"


@given(_items, st.integers(min_value=1, max_value=9), st.sampled_from(["test-clean", "dev-other", "a-b-c"]))
def test_split_of_every_planned_shard_is_its_split(items: list[PlanItem], size: int, hyphenated: str) -> None:
    items = [*items, PlanItem("hyph", hyphenated, "0000")]
    for shard in plan_shards("image", items, size):
        assert split_of(shard.shard_id) == shard.split


_grouped = st.lists(
    st.builds(
        PlanItem,
        id=st.text("abc0123", min_size=1, max_size=6),
        split=st.sampled_from(["train", "val"]),
        sha256=st.just("0000"),
        group=st.sampled_from([f"img{i}" for i in range(8)]),
    ),
    unique_by=lambda item: item.id,
    max_size=60,
)


@given(_grouped, st.integers(min_value=1, max_value=9))
def test_speech_planned_by_image_keeps_each_image_in_one_shard(items: list[PlanItem], size: int) -> None:
    shards = plan_shards("speech", items, size, by_group=True)
    group_of = {item.id: (item.split, item.group) for item in items}
    placed = [item for shard in shards for item in shard.items]
    assert sorted(placed) == sorted(item.id for item in items)
    home: dict[tuple[str, str], str] = {}
    for shard in shards:
        groups = [group_of[item] for item in shard.items]
        assert groups == sorted(groups)  # whole images, in image order, then utterance id
        for group in groups:
            assert home.setdefault(group, shard.shard_id) == shard.shard_id  # never split over two shards
        if len(set(groups)) > 1:
            assert len(shard.items) <= size  # only one image larger than a shard makes a larger shard
    assert plan_shards("speech", list(reversed(items)), size, by_group=True) == shards


def test_groups_fill_shards_up_to_their_size() -> None:
    items = [
        PlanItem(f"u{g}{k}", "train", "00", f"img{g}") for g, count in enumerate([2, 2, 3, 1, 5]) for k in range(count)
    ]
    shards = plan_shards("speech", items, 4, by_group=True)
    assert [len(shard.items) for shard in shards] == [4, 4, 5]  # 2+2 | 3+1 | the image of 5 alone
    assert shards[0].items == ("u00", "u01", "u10", "u11")
