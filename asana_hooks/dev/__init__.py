"""Development tools: `asana-hooks dev`, its demo, the embedded Redis and the fake Asana.

Nothing in the receiver or the workers imports this package; the CLI reaches it only for
`dev` and the tests use it as their Asana and their Redis.
"""
