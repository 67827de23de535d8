"""When a batch would only repeat an entry (workers.versions). Pure, no I/O."""

from __future__ import annotations

from dataclasses import replace

import pytest

from workers.model import ClosedBatch
from workers.versions import Version, carried_version, redundancy

AT_10 = "2026-12-04T10:00:00.000Z"
AT_11 = "2026-12-04T11:00:00.000Z"
AT_12 = "2026-12-04T12:00:00.000Z"


def batch(*, last_event_at: str = AT_11, resynced: int = 0, count: int = 1) -> ClosedBatch:
    return ClosedBatch(
        batch_id="1-1",
        gid="1",
        resource_type="task",
        count=count,
        actions=("changed",),
        fields=(),
        sources=("poller",),
        first_event_at=last_event_at,
        last_event_at=last_event_at,
        webhook_gid=None,
        target_id=None,
        parent=None,
        deleted=False,
        late=0,
        resynced=resynced,
    )


class TestRedundancy:
    """A resync never repeats what an entry carried; nothing else is ever held back."""

    @pytest.mark.parametrize("by_resync", [False, True])
    def test_a_resync_finding_an_emitted_state_is_redundant(self, by_resync: bool) -> None:
        """The crawl's modified_at is not newer than what an entry carried."""
        found = batch(resynced=1)
        assert redundancy(found, Version(AT_11, by_resync=by_resync))
        assert redundancy(found, Version(AT_12, by_resync=by_resync))

    def test_a_resync_finding_a_newer_state_is_emitted(self) -> None:
        """Modified after the last entry's data: a change nobody emitted yet."""
        assert redundancy(batch(resynced=1), Version(AT_10, by_resync=False)) is None

    def test_without_a_remembered_version_everything_is_emitted(self) -> None:
        """When in doubt, emit: no earlier entry (or one without modified_at)."""
        assert redundancy(batch(resynced=1), None) is None
        assert Version.from_hash({"modified_at": "", "by_resync": "1"}) is None

    def test_a_webhook_change_after_a_resync_that_carried_it_is_redundant(self) -> None:
        """Asana's delivery came late, after the resync emitted the state it made."""
        assert redundancy(batch(last_event_at=AT_11), Version(AT_11, by_resync=True))
        assert redundancy(batch(last_event_at=AT_12), Version(AT_11, by_resync=True)) is None

    def test_webhook_changes_are_never_held_back_by_webhook_entries(self) -> None:
        """Between real events the fingerprints decide, as before: no state comparison."""
        assert redundancy(batch(last_event_at=AT_10), Version(AT_12, by_resync=False)) is None

    def test_a_batch_with_one_real_event_is_not_resync_only(self) -> None:
        """A resync event that joined a webhook's open batch rides along with it."""
        mixed = batch(resynced=1, count=2)
        assert not mixed.resync_only
        assert redundancy(mixed, Version(AT_12, by_resync=False)) is None

    def test_a_deletion_is_always_emitted(self) -> None:
        deleted = replace(batch(resynced=1), deleted=True)
        assert redundancy(deleted, Version(AT_12, by_resync=True)) is None

    def test_versions_compare_as_instants_whatever_their_form(self) -> None:
        """Asana's modified_at may carry microseconds or an offset: normalised first."""
        assert carried_version({"modified_at": "2026-12-04T11:00:00.000123+00:00"}) == AT_11
        assert carried_version({"name": "no modified_at"}) is None
        assert carried_version(None) is None
        assert Version.from_hash({"modified_at": "2026-12-04T12:00:00+01:00"}) == Version(
            AT_11, by_resync=False
        )
