"""The scripts under tools/, run in this process (no interpreter start-up) or as a process."""
import importlib.util
import os
import signal
import subprocess
import sys
import traceback

import torch

from .paths import ROOT


def load_tool(relative):
    """A script of tools/ (path relative to the checkout) as a module, to call its functions."""
    name = 'conmim_tool_' + os.path.splitext(os.path.basename(relative))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, relative))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tool_main(relative, *argv):
    """``python <relative> argv...`` in this process: the script's ``main()`` with ``argv`` as
    its command line; returns what ``main`` returns, and lets ``SystemExit`` (a refusal) and
    any other exception through, as the process would end with them. What the run changes in
    the process (command line, working directory, environment, signal handlers,
    thread count) is put back."""
    tool = load_tool(relative)
    argv_before, environ_before = sys.argv, dict(os.environ)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    threads, cwd = torch.get_num_threads(), os.getcwd()
    sys.argv = [relative, *map(str, argv)]
    os.chdir(ROOT)  # where run_tool starts the process
    try:
        return tool.main()
    finally:
        os.chdir(cwd)
        sys.argv = argv_before
        os.environ.clear()
        os.environ.update(environ_before)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        torch.set_num_threads(threads)


def tool_fails(relative, *argv):
    """``tool_main`` of a command that must fail (a non-zero exit status): returns what the
    process would print last on stderr, the message of ``sys.exit`` or the traceback."""
    try:
        tool_main(relative, *argv)
    except SystemExit as stop:
        assert stop.code not in (0, None), f'{relative} exited with status {stop.code}'
        return str(stop.code)
    except Exception as err:  # the process would end with status 1 and this traceback
        return ''.join(traceback.format_exception(err))
    raise AssertionError(f'{relative} {" ".join(map(str, argv))} did not fail')


def run_tool(*args, env_extra=None, timeout=600):
    """``python args...`` as a process in the checkout (one interpreter start-up, >= 9 s);
    for what only a real process shows: the command line as written, exit statuses, kills."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', **(env_extra or {}))
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=timeout)
