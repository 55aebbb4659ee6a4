"""The scripts under tools/, run in this process: no interpreter start-up (>= 9 s each)."""
import importlib.util
import os
import signal
import sys
import time
import traceback

import torch

from .paths import ROOT


def load_tool(relative):
    """A script of tools/ (path relative to the checkout) as a module, to call its functions."""
    name = 'conmim_tool_' + os.path.splitext(os.path.basename(relative))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, relative))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import does: its functions pickle (worker pools)
    spec.loader.exec_module(module)
    return module


_last_end = [0.0]


def _not_in_the_second_of_the_last_run():
    """mmengine names a run's logger and message hub after the second it starts in: two
    Runners of one config started in the same second would share them (and one log file)."""
    now = time.time()
    if int(now) == int(_last_end[0]):
        time.sleep(1.0 - now % 1.0)


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
    os.chdir(ROOT)  # where the tests start tools as processes
    _not_in_the_second_of_the_last_run()
    try:
        return tool.main()
    finally:
        _last_end[0] = time.time()
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
