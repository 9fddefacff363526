"""The layout of a pod's state folder: every file and folder name podctl keeps there, written once.

No imports at all: the fenced hook path and the relay (run with `python -I -S`) take their file
names from here too. broker/paths.py (`PodPaths`) composes them into paths; the root is
pods/state.py's rule.

```
$PODCTL_HOME/<pod>/          0700
  .podctl-pod                marks a folder podctl made (only such folders are ever deleted)
  broker.sock                0600
  pod.db                     SQLite, WAL
  pod.yaml.path              the pod file this pod was brought up from: its desired state
  applied.json               what the supervisor (or up) last applied, for `add`/`remove`
  broker.lock, broker.pid    held / written by the broker daemon for its whole life
  supervisor.lock, .pid      the same for the supervisor daemon
  pod.lock                   held by whoever applies a change to the pod (up, down, the supervisor, ...)
  agents/<name>/             per-agent config the CLIs read, and its token (0600)
  site                       the site this machine runs of a pod across machines (`up --site`; docs/sites.md)
  bridge.lock, bridge.pid    held / written by the bridge to the other sites, for its whole life
  bridge.token               0600, the bridge's identity towards this broker (only bridge operations take it)
  logs/                      broker.log, supervisor.log, bridge.log, hooks.log, <agent>.exit.log
  worktrees/                 agents' git worktrees and their records (pods/worktree.py)
$PODCTL_HOME/.cache/<cli>/   what a CLI would otherwise cache in the user's home
```
"""

MARK = ".podctl-pod"
SOCKET = "broker.sock"
DB = "pod.db"
POD_FILE_RECORD = "pod.yaml.path"
APPLIED = "applied.json"
BROKER_LOCK = "broker.lock"
BROKER_PID = "broker.pid"
SUPERVISOR_LOCK = "supervisor.lock"
SUPERVISOR_PID = "supervisor.pid"
APPLY_LOCK = "pod.lock"
SITE = "site"
BRIDGE_LOCK = "bridge.lock"
BRIDGE_PID = "bridge.pid"
BRIDGE_TOKEN = "bridge.token"
AGENTS = "agents"
TOKEN = "token"
"""In each agent's folder."""
LOGS = "logs"
BROKER_LOG = "broker.log"
SUPERVISOR_LOG = "supervisor.log"
BRIDGE_LOG = "bridge.log"
HOOKS_LOG = "hooks.log"
WORKTREES = "worktrees"
CLI_CACHE = ".cache"
"""`<state root>/.cache/<cli>/`: shared by a CLI's agents of every pod of the state root (no pod can
be named `.cache`)."""


def exit_log(agent: str) -> str:
    """In `logs/`: why an agent's CLI last ended (its exit status and last lines)."""
    return f"{agent}.exit.log"


def socket_of(pod_dir: str) -> str:
    """The broker's socket in a pod folder, as a string (the hook path has no pathlib)."""
    return f"{pod_dir}/{SOCKET}"


def token_of(pod_dir: str, agent: str) -> str:
    return f"{pod_dir}/{AGENTS}/{agent}/{TOKEN}"


def hooks_log_of(pod_dir: str) -> str:
    return f"{pod_dir}/{LOGS}/{HOOKS_LOG}"
