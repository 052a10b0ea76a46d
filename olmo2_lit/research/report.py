def report(run_dir: str) -> None:
    raise NotImplementedError
