"""The HTTP reports of shadow candidates and experiments (``read`` scope), on the test service."""

from __future__ import annotations

from fastapi.testclient import TestClient

from referee.engine import Engine
from referee.engine.experiment import Arm, Experiment
from referee.online.shadow import shadow_store
from referee.policy import Policy
from referee.serve import create_app
from referee.serve.experiments import router
from referee.settings import Settings
from referee.store import Store
from referee.store.protocols import Exposure
from tests.online.test_shadow_report import constructed
from tests.records.conftest import T0
from tests.serve.conftest import DEFAULT_POLICY, HashtagDetector


def test_shadow_and_experiment_reports_over_http(tmp_path):
    settings = Settings(_env_file=None, policy=DEFAULT_POLICY, db_url=f"sqlite:///{tmp_path / 'r.db'}", follow_s=0)
    store = Store(settings.db_url)
    constructed(store)
    exp = Experiment(name="skew", salt="s", arms=[Arm(name="a", share=0.5), Arm(name="b", share=0.5)])
    records = shadow_store(store)
    records.register_experiment(exp.name, exp.model_dump(mode="json"))
    records.log_exposures([Exposure(experiment="skew", unit=f"u{k}", arm="a" if k % 10 else "b", item_id=f"i{k}",
                                    decision_id=f"d{k}", ts=T0) for k in range(200)])
    read = {"Authorization": f"Bearer {store.create_key('reader', ['read'])}"}
    moderate_only = {"Authorization": f"Bearer {store.create_key('mod', ['moderate'])}"}
    engine = Engine(Policy.from_file(DEFAULT_POLICY), [HashtagDetector()], sink=store)
    app = create_app(settings, engine=engine, store=store)
    app.include_router(router)
    with TestClient(app) as client:
        assert client.get("/v1/shadow/candidates", headers=read).json() == {"candidates": ["v2"]}
        r = client.get("/v1/shadow/v2/report", headers=read, params={"sample": 1})
        assert r.status_code == 200 and r.json()["agreement"] == 0.6 and len(r.json()["sample"]) == 1
        since = client.get("/v1/shadow/v2/report", headers=read, params={"since": "2026-02-01T12:02:00Z"})
        assert since.json()["items"] == 3
        bad = client.get("/v1/shadow/v2/report", headers=read, params={"since": "yesterday"})
        assert bad.status_code == 422 and "yesterday" in bad.text
        e = client.get("/v1/experiments/skew/report", headers=read)
        assert e.status_code == 200 and e.json()["sample_ratio"]["mismatch"] is True
        page = client.get("/v1/experiments/skew/report.html", headers=read)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "MISMATCH" in page.text and "data:image/png;base64," in page.text
        assert client.get("/v1/experiments/nope/report", headers=read).status_code == 404
        assert client.get("/v1/experiments/skew/report", headers=moderate_only).status_code == 403
        assert client.get("/v1/shadow/candidates").status_code == 401
    engine.close()
    store.close()
