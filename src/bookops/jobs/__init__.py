"""Jobs compose operations over one book, record their progress and history, and resume."""

from .job import new_job_id, run_job, run_many, select_books
from .kinds import KINDS, JobPlan, make_op, plan
from .lease import BookLease
from .runner import Runner, RunSummary, op_key, run_operations

__all__ = ["KINDS", "BookLease", "JobPlan", "RunSummary", "Runner", "make_op", "new_job_id", "op_key",
           "plan", "run_job", "run_many", "run_operations", "select_books"]
