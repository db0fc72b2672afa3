"""Start LlamaFactory training on this node under torchrun (c10d rendezvous), able to save and stop on request.

Usage: NNODES=2 NPROC_PER_NODE=4 MASTER_ADDR=node1 MASTER_PORT=29500 RDZV_ID=1234 \
           python -m training.launch RECIPE.yaml [key=value ...]

slurm/train.sh runs it once per node (one srun task each). It does what `llamafactory-cli train` does with
FORCE_TORCHRUN=1 and RDZV_ID set (llamafactory/launcher.py 0.9.5: `torchrun --nnodes N --nproc-per-node P
--rdzv-id ID --rdzv-backend c10d --rdzv-endpoint ADDR:PORT --max-restarts 0 <script> RECIPE key=value ...`),
with one difference: each worker runs LlamaFactory's own `run_exp` with one more callback,
PreemptionCallback. When the file named by FRACTO_PREEMPT_FLAG appears (slurm/train.sh's USR1 trap writes it
before a time limit or preemption), every rank agrees at the next step end (an all-reduce of the flag), the
trainer saves a checkpoint and stops, and rank 0 writes FLAG.saved with the step, so train.sh requeues the job.

Environment read: NNODES, NPROC_PER_NODE, MASTER_ADDR, MASTER_PORT, RDZV_ID (the parent) and
FRACTO_PREEMPT_FLAG (the workers). The recipe and overrides are read by LlamaFactory (read_args), unchanged.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

from transformers import TrainerCallback


class PreemptionCallback(TrainerCallback):
    """Save and stop at the next step end once the flag file exists on any rank (all ranks agree)."""

    def __init__(self, flag: str | None):
        self.flag = Path(flag) if flag else None

    def on_step_end(self, args, state, control, **kwargs):
        if self.flag is None:
            return control
        import torch
        import torch.distributed as dist

        wanted = torch.tensor([1.0 if self.flag.exists() else 0.0], device=args.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(wanted, op=dist.ReduceOp.MAX)  # a save is collective: every rank must decide alike
        if wanted.item() > 0:
            control.should_save = True
            control.should_training_stop = True
            if state.is_world_process_zero:
                print(f"[preemption] saving a checkpoint at step {state.global_step} and stopping", flush=True)
                tmp = self.flag.with_name(self.flag.name + ".saved.tmp")
                tmp.write_text(f"{state.global_step}\n", encoding="utf-8")
                os.replace(tmp, self.flag.with_name(self.flag.name + ".saved"))
        return control


def leave_after_training() -> NoReturn:
    """Exit 0 after Python's own exit handlers, skipping the interpreter's and the C++ runtime's teardown.

    Twice in this project's CPU ZeRO-3 runs (tests/support.teardown_abort) every rank had logged "Training
    completed" and saved, then one rank aborted on its way out: "terminate called without an active
    exception" and SIGABRT, which torchrun reports as a failed worker and Slurm as a FAILED job (breaking
    the afterok chain to merge, serve and eval). That message is std::terminate's, which the C++ runtime
    calls when a still-joinable std::thread object is destroyed, as happens to a library's background
    thread in static destructors at exit. LlamaFactory's run_exp has already destroyed the process group
    (llamafactory/train/tuner.py 0.9.5, _training_function), so nothing is left to say to other ranks:
    the atexit handlers (logging, report_to integrations) run, the streams are flushed, and os._exit ends
    the process without the destructors. Not verified against the abort itself, which could not be made
    to happen on demand; the tests keep their repeat-once for `llamafactory-cli train`, which has no such exit.
    """
    atexit._run_exitfuncs()  # CPython's own runner of the registered handlers (what a normal exit calls)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def torchrun_command(argv: list[str], env: dict[str, str]) -> list[str]:
    """The torchrun command line for this node (one agent; workers run this module again)."""
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    return [torchrun, "--nnodes", env.get("NNODES", "1"), "--nproc-per-node", env.get("NPROC_PER_NODE", "1"),
            "--rdzv-id", env.get("RDZV_ID", "fracto"), "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"{env.get('MASTER_ADDR', '127.0.0.1')}:{env.get('MASTER_PORT', '29500')}",
            "--max-restarts", "0", "-m", "training.launch", *argv]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    if "LOCAL_RANK" not in os.environ:  # the agent: hand over to torchrun (signals reach it directly)
        cmd = torchrun_command(argv, dict(os.environ))
        print("launch:", " ".join(cmd), flush=True)
        os.execv(cmd[0], cmd)
    from llamafactory.train.tuner import run_exp

    sys.argv = [sys.argv[0], *argv]  # LlamaFactory's read_args: RECIPE.yaml key=value ...
    run_exp(callbacks=[PreemptionCallback(os.environ.get("FRACTO_PREEMPT_FLAG"))])
    leave_after_training()


if __name__ == "__main__":
    sys.exit(main())
