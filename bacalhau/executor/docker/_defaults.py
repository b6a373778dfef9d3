"""The Docker executor's defaults, apart from it: configuration reads them on nodes that never
load the Docker SDK (a requester)."""

#: Processes (threads included) one container may hold, unless the operator says otherwise.
DEFAULT_PIDS_LIMIT = 256
#: Bytes of the tmpfs every container gets at /tmp.
DEFAULT_TMP_SIZE = 64 * 1024 * 1024
#: Bytes all the result folders of one execution may hold together (0: no cap).
DEFAULT_RESULT_DISK_LIMIT = 10 * 1024**3
#: Seconds between two sweeps of the reaper.
DEFAULT_REAP_INTERVAL = 30.0
#: Seconds a registry's answer that it has an image is kept, and how many images' answers.
DEFAULT_IMAGE_CACHE_TTL = 300.0
DEFAULT_IMAGE_CACHE_SIZE = 1024
