"""RunSummary: one typed record holding the savings record, read tolerantly (older summaries'
savings keys included)."""

from __future__ import annotations

import dataclasses
import json
import math

from learndrop.core.savings import SavingsReport
from learndrop.core.summary import OLD_SAVINGS_KEYS, DroppedUnit, EpochResult, RunSummary

KEYS = ["run_name", "status", "output_dir", "model", "dataset", "mode", "epochs",
        "final_accuracy", "final_loss", "final_accuracy_scaled", "best_accuracy",
        "wall_time_s", "train_time_s", "dropped", "units", "savings", "score_overhead",
        "history", "checkpoint", "weights", "device", "data_time_share", "machine",
        "load_per_cpu", "world_size"]

SAVINGS = SavingsReport(
    step=40, forward_flops_saved_now=0.3, train_flops_saved_now=0.35,
    forward_flops_saved_total=0.2, train_flops_saved_total=0.25, trainable_params_now=900,
    total_params=1000, step_time_s_now=0.01, full_step_time_s_now=0.012,
    measured_time_saved_now=0.16, time_saved_s_total=1.5, projected_time_saved_s_total=1.5,
    efficiency_total=0.8, time_saved_low_s_total=1.2, time_saved_high_s_total=1.8,
    predicted_time_saved_s_total=1.6, step_time_spread_now=0.05,
    allreduce_bytes_per_step_now=600, full_allreduce_bytes_per_step_now=1000,
    allreduce_bytes_saved_total=0.3)

#: the same run's summary as the version before the savings record wrote it
OLD_FORMAT = {
    "run_name": "r1", "status": "finished", "epochs": 2, "units": 4,
    "forward_flops_saved": 0.2, "train_flops_saved": 0.25, "final_forward_flops_saved": 0.3,
    "final_train_flops_saved": 0.35, "trainable_params": 900, "total_params": 1000,
    "step_time_s": 0.01, "full_step_time_s": 0.012, "measured_time_saved": 0.16,
    "time_saved_s": 1.5, "efficiency": 0.8, "score_overhead": 0.01,
    "time_saved_low_s": 1.2, "time_saved_high_s": 1.8, "predicted_time_saved_s": 1.6,
    "step_time_spread": 0.05, "data_time_share": 0.02, "world_size": 2,
    "allreduce_bytes_per_step": 600, "full_allreduce_bytes_per_step": 1000,
    "allreduce_bytes_saved": 0.3}


def full_summary() -> RunSummary:
    return RunSummary(
        run_name="r1", status="finished", output_dir="/runs/r1", model="small_cnn",
        dataset="digits", mode="freeze", epochs=2, final_accuracy=0.91, final_loss=0.3,
        final_accuracy_scaled=None, best_accuracy=0.92, wall_time_s=12.5, train_time_s=10.0,
        dropped=(DroppedUnit("stem", 8, 1.0, "policy"),), units=4, savings=SAVINGS,
        score_overhead=0.01,
        history=(EpochResult(0, 1.0, 0.5, 1.1, 0.6, None, 5.0),
                 EpochResult(1, 0.5, 0.8, 0.6, 0.91, 0.9, 4.0, 9.5)),
        checkpoint="/runs/r1/checkpoint.pt", weights="/runs/r1/final.pt", device="cpu",
        data_time_share=0.02, machine="host: cpu x 2, cpu", load_per_cpu=1.1, world_size=2)


def test_to_dict_has_the_stored_keys_in_order_and_is_json() -> None:
    d = full_summary().to_dict()
    assert list(d) == KEYS  # no "error" key unless the run failed
    assert d["dropped"] == [{"unit": "stem", "step": 8, "epoch": 1.0, "reason": "policy"}]
    assert d["history"][1] == {"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.8,
                               "val_loss": 0.6, "val_accuracy": 0.91,
                               "val_accuracy_scaled": 0.9, "epoch_time_s": 4.0,
                               "elapsed_s": 9.5}
    assert d["savings"] == dataclasses.asdict(SAVINGS)  # the record's own field names
    json.dumps(d, allow_nan=True)


def test_round_trip_through_json() -> None:
    s = full_summary()
    assert RunSummary.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_nan_survives_the_round_trip_and_compares_equal() -> None:
    s = RunSummary(status="stopped")  # no validation ran: accuracy and loss are NaN
    back = RunSummary.from_dict(json.loads(json.dumps(s.to_dict(), allow_nan=True)))
    assert math.isnan(back.final_accuracy) and back == s


def test_a_failed_run_keeps_its_error() -> None:
    s = RunSummary(status="failed", error="out of memory")
    assert s.to_dict()["error"] == "out of memory"
    assert RunSummary.from_dict(s.to_dict()).error == "out of memory"


def test_an_old_summary_missing_keys_takes_the_defaults() -> None:
    old = {"run_name": "old", "status": "finished", "final_accuracy": 0.75, "epochs": 3,
           "dropped": [{"unit": "stem", "step": 10, "epoch": 1.25, "reason": "policy"}]}
    s = RunSummary.from_dict(old)
    assert (s.run_name, s.status, s.final_accuracy, s.epochs) == ("old", "finished", 0.75, 3)
    assert s.dropped == (DroppedUnit("stem", 10, 1.25, "policy"),)
    assert s.wall_time_s == 0.0 and s.best_accuracy == 0.0 and s.history == ()
    assert s.savings == SavingsReport()
    assert s.final_accuracy_scaled is None and s.error == ""


def test_the_oldest_wall_time_key_is_read() -> None:
    assert RunSummary.from_dict({"elapsed_s": 42.0}).wall_time_s == 42.0
    assert RunSummary.from_dict({"elapsed_s": 42.0, "wall_time_s": 7.0}).wall_time_s == 7.0


def test_unknown_keys_and_wrong_types_are_ignored() -> None:
    s = RunSummary.from_dict({"best_val_accuracy": 0.8, "cache_location": "device",
                              "epochs": "three", "wall_time_s": True, "units": 4.0,
                              "savings": {"efficiency_total": None, "step": "ten",
                                          "train_flops_saved_total": 0.5},
                              "dropped": "stem",
                              "history": [{"epoch": 0, "val_accuracy": 0.5}, "junk"]})
    assert s.epochs == 0 and s.wall_time_s == 0.0 and s.units == 4
    assert s.savings == SavingsReport(train_flops_saved_total=0.5) and s.dropped == ()
    assert s.history == (EpochResult(epoch=0, val_accuracy=0.5),)


def test_anything_that_is_not_a_table_gives_the_defaults() -> None:
    for junk in (None, [], "summary", 3):
        assert RunSummary.from_dict(junk) == RunSummary()


def test_an_old_summary_keeps_its_savings_under_their_new_names() -> None:
    """Before the savings record, a summary's ``train_flops_saved`` covered the whole run and
    ``final_train_flops_saved`` was the per-step figure at its end: they become the record's
    ``_total`` and ``_now`` figures."""
    s = RunSummary.from_dict(json.loads(json.dumps(OLD_FORMAT)))
    assert s.savings == dataclasses.replace(SAVINGS, step=0, projected_time_saved_s_total=0.0)
    assert s.savings.train_flops_saved_total == 0.25 and s.savings.train_flops_saved_now == 0.35
    assert (s.run_name, s.epochs, s.score_overhead, s.world_size) == ("r1", 2, 0.01, 2)
    assert set(OLD_SAVINGS_KEYS.values()) <= {f.name for f in dataclasses.fields(SavingsReport)}
    # written again, it has the new form only
    again = s.to_dict()
    assert "train_flops_saved" not in again and RunSummary.from_dict(again) == s


def test_a_summary_with_a_savings_table_ignores_stray_old_keys() -> None:
    data = dict(full_summary().to_dict(), train_flops_saved=0.99)
    assert RunSummary.from_dict(data).savings == SAVINGS
