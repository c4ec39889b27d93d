"""Runs a test file's cases in order (shared by the integration tests): one
"ok"/"skip"/"FAIL" line each, tracebacks for failures, then the plain closing
line "N passed, N failed"."""
import time
import traceback


class Skip(Exception):
    """Raised by a case that cannot run here (a missing kernel feature)."""


def run_tests(tests, selected=()):
    """Runs the tests named in `selected` (all when empty); returns (passed, failed, skipped)."""
    passed = failed = skipped = 0
    for test in tests:
        if selected and test.__name__ not in selected:
            continue
        start = time.time()
        try:
            test()
            passed += 1
            print("ok   %-60s %.1f s" % (test.__name__, time.time() - start), flush=True)
        except Skip as why:
            skipped += 1
            print("skip %-60s %s" % (test.__name__, why), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s" % test.__name__, flush=True)
            traceback.print_exc()
    print("%d passed, %d failed%s" % (passed, failed, ", %d skipped" % skipped if skipped else ""), flush=True)
    return passed, failed, skipped
