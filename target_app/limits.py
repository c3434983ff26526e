"""Process limits a server under load needs."""
from __future__ import annotations

import resource


def raise_open_file_limit() -> int:
    """Lift the soft open-file limit to the hard one; every connection is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft
