"""Real-time delivery to the widget: the websocket consumer, its frames, presence and pushes.

Protocol v1 is documented in docs/protocol.md; `frames` holds every frame's schema,
`consumers` the websocket door, `services` what each client frame does, `push` the pushes
that leave from services after commit, `presence` who is connected across processes.
"""
