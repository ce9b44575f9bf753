"""A cirrus process payload (a STAC ItemCollection with a `process` array), so cirrus feeders
can point at the process queue unchanged."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coordinator.messages.fields import Callback, PayloadId, WorkflowName

# The cirrus models are built on the first cirrus message (`defer_build`), not at import: most
# deployments never receive one, and building a pydantic model is most of an import's cost.


class CirrusProcessDefinition(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)

    workflow: WorkflowName
    collections: str | None = None
    replace: bool = False


class CirrusFeature(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)

    id: str
    collection: str | None = None


class CirrusPayload(BaseModel):
    """A cirrus process payload; only the fields that decide identity are checked."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)

    type: Literal["FeatureCollection"] = "FeatureCollection"
    id: PayloadId | None = None
    features: list[CirrusFeature] = Field(default_factory=list)
    process: list[CirrusProcessDefinition] = Field(min_length=1)
    callback: Callback | None = None

    def payload_id(self) -> str:
        """The id cirrus gives it: `{collections}/workflow-{name}/{item ids}`."""
        if self.id is not None:
            return self.id
        if not self.features:
            raise ValueError("a cirrus payload without `id` needs `features` to derive one")
        step = self.process[0]
        if step.collections is not None:
            collections = step.collections
        else:
            names = sorted({f.collection for f in self.features if f.collection is not None})
            collections = "/".join(names) if names else "none"
        items = "/".join(sorted(f.id for f in self.features))
        return f"{collections}/workflow-{step.workflow}/{items}"
