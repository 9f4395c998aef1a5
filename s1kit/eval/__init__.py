"""Evaluation: grading model answers and the metrics reported over them.

    from s1kit.eval.grade import grade
    grade(model_output_text, gold="\\frac{1}{2}", kind="math").correct

Modules:
    grade.py    offline tiered grader (normalise -> exact -> integer -> math-verify in a worker)
    metrics.py  accuracy, pass@k, maj@k, bootstrap CIs and the s1 paper's control/scaling/performance

Nothing is imported here so that ``import s1kit.eval`` stays cheap (the grader's worker process
imports ``s1kit.eval.grade`` on its own).
"""
