"""Extraction and evaluation with the embedded Gemma 270M: only the output's types are
checked (a tiny base model's answers are not expected to be right, just well-formed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from phonic import Phonic, PhonicEnvironment

from openline.providers.llm.llama_cpp import LlamaCppLLM, LlamaCppOptions, ensure_embedded_gguf
from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS
from openline.voice.session import Providers
from tests.postcall.conftest import ServerFactory
from tests.postcall.seeding import seed
from tests.postcall.test_extraction_eval import FIELDS

TYPES = {"string": str, "int": int, "float": (int, float), "bool": bool}


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_embedded_gguf(tmp_path_factory.mktemp("models"))


def _valid(value: object, ftype: str) -> bool:
    if value is None:
        return True
    if ftype.endswith("[]"):
        return isinstance(value, list) and all(_valid(v, ftype[:-2]) and v is not None
                                               for v in value)
    if ftype in ("int", "float") and isinstance(value, bool):
        return False
    return isinstance(value, TYPES[ftype])


def test_embedded_llm_gives_type_valid_results(make_server: ServerFactory, gguf: Path) -> None:
    llm = LlamaCppLLM(LlamaCppOptions(gguf_path=gguf, seed=3))
    server = make_server(Providers(EnergyVAD(), FakeSTT(), llm, FakeTTS()))
    client = Phonic(api_key=server.api_key, environment=PhonicEnvironment(
        base=f"{server.url}/v1", production=server.ws_url))
    conv_id = seed(server.database_url)
    schema = client.extraction_schemas.create(name="booking", prompt="Booking details.",
                                              fields=FIELDS)
    result = client.conversations.extract_data(conv_id, schema_id=schema.id).result
    assert set(result) == {f["name"] for f in FIELDS}
    for f in FIELDS:
        assert _valid(result[f["name"]], f["type"]), (f, result[f["name"]])

    project = client.projects.get("main").project
    prompt = client.projects.create_eval_prompt(project.id, name="booked",
                                                prompt="Was a table booked?")
    verdict = client.conversations.evaluate(conv_id, prompt_id=prompt.id).evaluation
    assert verdict.result in ("successful", "unsuccessful", "undecided")
