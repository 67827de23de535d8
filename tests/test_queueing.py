"""The one value every delivery job receives (asana_hooks.queueing.Delivery). Pure."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from asana_hooks.queueing import Delivery

texts = st.none() | st.text(min_size=1, max_size=20)
events = st.lists(
    st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.integers(), max_size=3),
    max_size=4,
).map(tuple)
deliveries = st.builds(
    Delivery,
    source=st.sampled_from(["webhook", "poller"]),
    target_id=texts,
    webhook_gid=texts,
    digest=texts,
    received_at=st.text(max_size=30),
    events=events,
)


class TestDelivery:
    @given(deliveries)
    def test_round_trip(self, delivery: Delivery) -> None:
        """What a job receives reads back as what was enqueued."""
        assert Delivery.from_dict(delivery.to_dict()) == delivery
        assert Delivery.from_job({"delivery": delivery.to_dict()}) == delivery

    @given(st.dictionaries(st.text(max_size=10), st.none() | st.text(max_size=5) | st.integers()))
    def test_any_mapping_reads_as_a_delivery(self, raw: dict[str, Any]) -> None:
        """Arguments of the wrong type give a delivery with nothing in it, never an error."""
        delivery = Delivery.from_job(raw)
        assert delivery.source in ("webhook", "poller")
        assert isinstance(delivery.events, tuple)
