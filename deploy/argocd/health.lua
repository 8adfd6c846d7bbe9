-- Argo CD health check for rostersync.io RosterConnection, SyncSchedule and JourneyPolicy.
-- The controller writes kstatus conditions (docs/operations.md, "Health checks"): Ready, and while
-- Ready is False either Reconciling=True (it gets there by itself) or Stalled=True (a person must act).
-- Configure it in argocd-cm as resource.customizations.health.rostersync.io_<Kind> (all three kinds).
local hs = { status = "Progressing", message = "Waiting for the rostersync controller" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= generation then
  hs.message = "Waiting for the controller to observe generation " .. tostring(generation)
  return hs
end
local ready = nil
local reconciling = nil
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Stalled" and c.status == "True" then
    return { status = "Degraded", message = tostring(c.reason) .. ": " .. tostring(c.message) }
  end
  if c.type == "Reconciling" and c.status == "True" then
    reconciling = c
  end
  if c.type == "Ready" then
    ready = c
  end
end
if reconciling ~= nil then
  return { status = "Progressing", message = tostring(reconciling.reason) .. ": " .. tostring(reconciling.message) }
end
if ready ~= nil and ready.status == "True" then
  if obj.kind == "SyncSchedule" and obj.spec ~= nil and obj.spec.suspend == true then
    return { status = "Suspended", message = tostring(ready.message) }
  end
  return { status = "Healthy", message = tostring(ready.message) }
end
if ready ~= nil then
  hs.message = tostring(ready.reason) .. ": " .. tostring(ready.message)
end
return hs
