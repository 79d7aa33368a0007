"""The agreement kind: score tasks, one pair of networks per (task, seed, protocol point).

Fidelity studies (`fidelity:`) and top-k searches (`search:`) are sections of this kind's spec.
"""
from trainables.protocol import Protocol

from orchestrator.kinds import SweepKind
from orchestrator.kinds.agreement.results import compare_sets, finish_sweep, summarize
from orchestrator.kinds.agreement.spec import AgreementSpec, AgreementTrial, parse_spec, spec_data
from orchestrator.specs.fidelity import Fidelity
from orchestrator.specs.search import Search
from orchestrator.specs.task_sets import TaskSet


def _adapter():
    from orchestrator.kinds.agreement.trial import AgreementAdapter
    return AgreementAdapter()


def example(root: str) -> dict:
    return {"name": "example-agreement", "dataset": {"name": "imagefolder", "root": root},
            "protocol": {"arch": "mlp", "width": 0.125, "epochs": 2, "batch_size": 64, "holdout": 60, "compile": "off"},
            "tasks": {"real": [0, 1], "random": [0]}, "seeds": [0], "resources": {"cpus": 1}}


KIND = SweepKind(
    name="agreement", doc="score tasks: one pair of networks per task, seed and protocol point",
    spec=AgreementSpec, trial=AgreementTrial, parse=parse_spec, dump=spec_data, adapter=_adapter,
    finish=finish_sweep, summarize=summarize, example=example, compare=compare_sets,
    sections={"agreement spec": AgreementSpec, "protocol": Protocol, "tasks.<set>": TaskSet, "search": Search,
              "fidelity": Fidelity})
