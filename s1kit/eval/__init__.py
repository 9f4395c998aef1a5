"""Evaluation: grading model answers and the metrics reported over them.

    from s1kit.eval.grade import grade
    grade(model_output_text, gold="\\frac{1}{2}", kind="math").correct

Modules:
    grade.py       offline tiered grader (normalise -> exact -> integer -> math-verify in a worker)
    judge.py       optional LLM judge tier (OpenAI-compatible endpoint, temperature 0, disk cache)
    metrics.py     accuracy, pass@k, maj@k, bootstrap CIs and the s1 paper's control/scaling/performance
    benchmarks.py  AIME/MATH500/AMC/GPQA specs (Hub or local file, revisions) and synthetic tasks
    sweep.py       every (budget, waits) point from one longest greedy run per problem
    baselines.py   majority voting, rejection sampling, conditional-control prompts
    run.py         `s1kit eval`: EvalConfig, generation per method, resumable samples, results
    summary.py     per-method points and Control/Scaling/Performance from graded samples
    report.py      Markdown/HTML report, scaling and parallel-vs-sequential plots

Nothing is imported here so that ``import s1kit.eval`` stays cheap (the grader's worker process
imports ``s1kit.eval.grade`` on its own).
"""
