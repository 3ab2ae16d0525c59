"""Serving corral: the worker pool that runs tasks inside the server process."""

from runtime.serve.pool import DrainOutcome, JobInfo, JobState, Submitted, WorkerPool

__all__ = ["DrainOutcome", "JobInfo", "JobState", "Submitted", "WorkerPool"]
