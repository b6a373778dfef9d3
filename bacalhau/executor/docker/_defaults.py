"""The Docker executor's defaults, apart from it: configuration reads them on nodes that never
load the Docker SDK (a requester)."""

#: Processes (threads included) one container may hold, unless the operator says otherwise.
DEFAULT_PIDS_LIMIT = 256
#: Bytes of the tmpfs a container gets at /tmp when its root is read-only.
DEFAULT_TMP_SIZE = 64 * 1024 * 1024
#: Bytes a container may write to its own filesystem (the image's writable layer, outside
#: its mounts) before it is stopped (0: no cap).
DEFAULT_WRITABLE_LAYER_LIMIT = 10 * 1024**3
#: Seconds between two measures of a running container's writable layer.
DEFAULT_LAYER_POLL_INTERVAL = 2.0
#: Capabilities taken from Docker's default set: every one. Images whose package managers or
#: entrypoints chown or switch user need some back: an operator then drops only those that
#: reach past the container, raw sockets and device nodes (``NET_RAW``, ``MKNOD``).
DEFAULT_CAP_DROP = ("ALL",)
#: Containers see their image's root read-only (they write to their result folders and a
#: bounded tmpfs at /tmp) unless the operator lets them write there (capped: see
#: ``DEFAULT_WRITABLE_LAYER_LIMIT``).
DEFAULT_READ_ONLY_ROOTFS = True
#: Bytes all the result folders of one execution may hold together (0: no cap).
DEFAULT_RESULT_DISK_LIMIT = 10 * 1024**3
#: Seconds between two sweeps of the reaper.
DEFAULT_REAP_INTERVAL = 30.0
#: Seconds a registry's answer that it has an image is kept, and how many images' answers.
DEFAULT_IMAGE_CACHE_TTL = 300.0
DEFAULT_IMAGE_CACHE_SIZE = 1024
