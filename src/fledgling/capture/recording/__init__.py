"""Recording: how what the gateway (or the client wrapper) saw of a call reaches the store.

    exchange.py    what was seen on the wire, and its total conversion into a `Call`
    recorder.py    spool + writer, supervised: the one way captured calls reach the store
    spool.py       durable, group-fsync'd append-only spool with crash replay
    writer.py      the background batch writer, guarded per record
    quarantine.py  records the store refused, kept beside the spool and counted
"""
