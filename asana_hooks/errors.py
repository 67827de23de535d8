"""The root of every exception asana-hooks raises on purpose. Pure, no I/O.

Each family lives beside the code that raises it and carries its data as attributes, as
gidgethub's ``GitHubException`` tree does; catching ``HooksError`` catches any of them:

- ``asana_errors.AsanaError``: Asana refused a request or could not be reached (and its kin);
- ``settings.SettingsError``: a variable is missing or malformed;
- ``events.MalformedEvent``, ``filters.FilterSpecError``: input that does not parse;
- ``secretbox.InvalidKey``, ``secretbox.UndecryptableSecret``: encryption keys and secrets;
- ``registration.SecretMismatch``: Asana's 201 carried a secret other than ours;
- ``receiver.hook.RequestError``: a delivery's body too large, too slow, or abandoned;
- ``workers.poller.store.LockLost``, ``workers.sinks.SinkFailed``: the workers' own;
- ``cli.context.Failure``: what a command prints as its one line.
"""

from __future__ import annotations


class HooksError(Exception):
    """Something asana-hooks detected and named; the subclass says what."""
