from tests.runner.support import _job_modules, job_server, job_worker, private_redis  # noqa: F401
