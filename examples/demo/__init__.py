"""``python -m brownout demo``: the retail example against local stand-ins of its
dependencies, broken one by one while traffic flows, shown live in the terminal."""
