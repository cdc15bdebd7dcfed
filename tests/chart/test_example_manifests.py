"""Every YAML file in examples/ is valid: Kubernetes objects against the Kubernetes OpenAPI
schemas, kvault's own kinds against the generated CRD schemas, SecretProviderClasses against
the driver's v1 shape. The walk-through's files are referenced from the documentation."""

import pytest

from conftest import REPO_ROOT, load_yaml_documents, validate_object

EXAMPLES = REPO_ROOT / "examples"

# YAML files in examples/ that are not Kubernetes objects (the assertion below keeps a
# manifest that lost its apiVersion or kind from being skipped silently).
NOT_KUBERNETES_OBJECTS = {
    "server/config.yaml": "kvault server --config file",
    "provider/driver-values.yaml": "values for the Secrets Store CSI Driver's Helm chart",
}

FILES = sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".yaml", ".yml"))


def test_there_are_examples():
    assert len(FILES) >= 10
    assert any(p.parent.name == "walkthrough" for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(EXAMPLES)) for p in FILES])
def test_example_is_valid(path):
    rel = str(path.relative_to(EXAMPLES))
    docs = load_yaml_documents(path)
    assert docs, f"{rel} is empty"
    if rel in NOT_KUBERNETES_OBJECTS:
        assert all("kind" not in d for d in docs)
        return
    for doc in docs:
        validate_object(doc)


def test_walkthrough_files_are_referenced_from_the_docs():
    docs = "\n".join(p.read_text() for p in [REPO_ROOT / "README.md",
                                              *sorted((REPO_ROOT / "docs").glob("*.md"))])
    missing = [p.name for p in sorted((EXAMPLES / "walkthrough").iterdir())
               if f"walkthrough/{p.name}" not in docs]
    assert not missing, f"not referenced from README.md or docs/: {missing}"


def test_walkthrough_namespaces_come_first():
    """`kubectl apply -f examples/walkthrough/` applies files in name order: the namespaces
    must exist before anything is created in them."""
    files = sorted((EXAMPLES / "walkthrough").glob("*.yaml"))
    created = set()
    for path in files:
        for doc in load_yaml_documents(path):
            if doc["kind"] == "Namespace":
                created.add(doc["metadata"]["name"])
            elif "namespace" in doc.get("metadata", {}):
                assert doc["metadata"]["namespace"] in created, (
                    f"{path.name}: {doc['kind']} {doc['metadata']['name']} in a namespace created later"
                )
