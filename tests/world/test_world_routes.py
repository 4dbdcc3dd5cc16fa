"""Route completion (tiny_hellaswag): the answer is what followed the place in the first telling."""

import random

import pytest

from ablation.world import routes
from ablation.world.tasks import hellaswag_items
from ablation.world.world import make_world


def first_telling_order(text: str) -> list[str]:
    """Places in the order the first sentence names them."""
    first = text.split(". ")[0]
    return sorted((p for p in routes.PLACES if f"the {p}," in first or f"the {p} " in first + " "), key=lambda p: first.index(f"the {p}"))


@pytest.mark.parametrize("seed", range(5))
def test_gold_follows_the_query_place_and_distractors_are_its_neighbours(seed):
    for item in hellaswag_items(make_world(seed), random.Random(seed), 20):
        order = first_telling_order(item["query"])
        assert len(order) in routes.LENGTHS and len(set(order)) == len(order)
        current = item["query"].rsplit("left the ", 1)[1].split(" and walked")[0]
        i = order.index(current)
        choices = [c.rstrip(".") for c in item["choices"]]
        assert choices[item["label"]] == order[i + 1]
        assert order[i - 1] in choices and order[i + 2] in choices
        assert len([c for c in choices if c not in order]) == 1


def test_retold_legs_follow_the_route():
    rng = random.Random(0)
    person, route = routes.sample_route(rng, 5)
    legs = routes.legs(rng, person, route, 3)
    pairs = [(leg.split("left the ")[1].split(" and")[0], leg.split("to the ")[1].rstrip(".")) for leg in legs]
    starts = [route.index(a) for a, _ in pairs]
    assert starts == list(range(starts[0], starts[0] + 3))
    assert all(route[route.index(a) + 1] == b for a, b in pairs)
