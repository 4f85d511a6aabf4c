import pytest


@pytest.fixture(autouse=True)
def index_dir(tmp_path, monkeypatch):
    """Video frame indexes go to a folder of the test's own, never the user's cache; $OCIO is unset."""
    folder = tmp_path / "index"
    monkeypatch.setenv("SAM2ROTO_INDEX_DIR", str(folder))
    monkeypatch.delenv("OCIO", raising=False)
    return folder
