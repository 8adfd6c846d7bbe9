{{/* The chart's name (`nameOverride` replaces it in names and in `app.kubernetes.io/name`). */}}
{{- define "rostersync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The full name of the release's objects: `fullnameOverride` when set, else the release name, prefixed
with the chart name unless it already contains it.
*/}}
{{- define "rostersync.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "rostersync.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The labels every object of the release has, except `app.kubernetes.io/component`. */}}
{{- define "rostersync.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "rostersync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rostersync
{{- end -}}

{{/*
Labels of an object, with exactly one `app.kubernetes.io/component`: `controller` (the Deployment,
its Service, ServiceAccount and RBAC), `sync-job` (what the sync Jobs run as) or `test` (the
`helm test` Pod, which must not match the controller's selector).
*/}}
{{- define "rostersync.labels" -}}
{{ include "rostersync.commonLabels" . }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "rostersync.syncJobLabels" -}}
{{ include "rostersync.commonLabels" . }}
app.kubernetes.io/component: sync-job
{{- end -}}

{{- define "rostersync.testLabels" -}}
{{ include "rostersync.commonLabels" . }}
app.kubernetes.io/component: test
{{- end -}}

{{/* The controller pods' selector (immutable in a Deployment: never change it). */}}
{{- define "rostersync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rostersync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "rostersync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rostersync.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "rostersync.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "rostersync.jobImage" -}}
{{- default (include "rostersync.image" .) .Values.syncJob.image -}}
{{- end -}}

{{- define "rostersync.syncJobClusterRole" -}}
{{- default (printf "%s-sync-job" (include "rostersync.fullname" .)) .Values.syncJob.clusterRoleName -}}
{{- end -}}

{{- define "rostersync.leaseName" -}}
{{- default (include "rostersync.fullname" .) .Values.controller.leaseName -}}
{{- end -}}

{{/* Whether leader election is on: `auto` means on with more than one replica. */}}
{{- define "rostersync.leaderElect" -}}
{{- $le := toString .Values.controller.leaderElection -}}
{{- if eq $le "true" -}}true
{{- else if eq $le "false" -}}false
{{- else if gt (int .Values.replicaCount) 1 -}}true
{{- else -}}false
{{- end -}}
{{- end -}}

{{/*
The arguments of `rostersync controller`: the ONLY place where values become flags, so that flag
names can be reconciled with the controller in one spot.
*/}}
{{/* database.tenancy, checked. */}}
{{- define "rostersync.databaseTenancy" -}}
{{- $t := .Values.database.tenancy | default "dedicated" -}}
{{- if not (has $t (list "dedicated" "shared")) -}}
{{- fail (printf "database.tenancy is %q: use dedicated (a database role per district) or shared" $t) -}}
{{- end -}}
{{- $t -}}
{{- end -}}

{{- define "rostersync.controllerArgs" -}}
- controller
- --metrics-addr=0.0.0.0:{{ .Values.controller.metricsPort }}
{{- if .Values.ui.enabled }}
- --ui-addr=0.0.0.0:{{ .Values.ui.port }}
{{- end }}
- --database-secret={{ required "database.secretName is required: the name of a Secret holding the Postgres URL" .Values.database.secretName }}
- --database-secret-key={{ .Values.database.secretKey }}
- --database-tenancy={{ include "rostersync.databaseTenancy" . }}
- --history-retention={{ .Values.database.historyRetention }}
- --sync-image={{ include "rostersync.jobImage" . }}
- --sync-service-account={{ .Values.syncJob.serviceAccountName }}
{{- with include "rostersync.syncJobDefaults" . }}
- {{ printf "--sync-job-defaults=%s" . | toJson }}
{{- end }}
{{- if .Values.smtp.secretName }}
- --smtp-secret={{ .Values.smtp.secretName }}
{{- end }}
{{- range .Values.clever.allowedApiHosts }}
- --allowed-api-host={{ . }}
{{- end }}
{{- with .Values.licensedProducts }}
- --licensed-products={{ join "," . }}
{{- end }}
{{- range .Values.watch.namespaces }}
- --namespace={{ . }}
{{- end }}
- --max-concurrent-reconciles={{ .Values.controller.maxConcurrentReconciles }}
- --verify-startup-jitter-seconds={{ .Values.controller.verifyStartupJitterSeconds }}
- --verify-rate-per-second={{ .Values.controller.verifyRatePerSecond }}
- --lost-run-grace-seconds={{ .Values.controller.lostRunGraceSeconds }}
- --failures-before-not-ready={{ .Values.controller.failuresBeforeNotReady }}
- --slot-jitter-seconds={{ .Values.controller.slotJitterSeconds }}
- --max-concurrent-syncs={{ .Values.controller.maxConcurrentSyncs }}
{{- if eq (include "rostersync.leaderElect" .) "true" }}
- --leader-elect
- --lease-name={{ include "rostersync.leaseName" . }}
- --lease-duration-seconds={{ .Values.controller.leaseDurationSeconds }}
- --lease-renew-deadline-seconds={{ .Values.controller.leaseRenewDeadlineSeconds }}
- --lease-retry-period-seconds={{ .Values.controller.leaseRetryPeriodSeconds }}
{{- end }}
{{- with .Values.caBundle.configMapName }}
- --extra-ca-file=/etc/rostersync/extra-ca/ca.crt
{{- if $.Values.caBundle.syncJobs }}
- --sync-ca-bundle-configmap={{ . }}:{{ $.Values.caBundle.key }}
{{- end }}
{{- end }}
{{- range .Values.controller.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
`syncJob.defaults` as JSON without its empty fields (nothing when all are empty). Fails on what the
controller would refuse at start (it checks the same), with the value's path.
*/}}
{{- define "rostersync.syncJobDefaults" -}}
{{- $d := .Values.syncJob.defaults -}}
{{- range $d.extraEnv -}}
{{- if has .name (list "CLEVER_TOKEN" "CLEVER_CLIENT_ID" "CLEVER_CLIENT_SECRET" "DATABASE_URL") -}}
{{- fail (printf "syncJob.defaults.extraEnv sets %s, which the controller sets from the RosterConnection's credentials Secret or the database Secret; remove it" .name) -}}
{{- end -}}
{{- end -}}
{{- range $key, $_ := $d.podLabels -}}
{{- if or (has $key (list "app.kubernetes.io/managed-by" "job-name" "controller-uid")) (hasPrefix "rostersync.io/" $key) (hasPrefix "batch.kubernetes.io/" $key) -}}
{{- fail (printf "syncJob.defaults.podLabels sets %s, a label of the rostersync controller (app.kubernetes.io/managed-by, rostersync.io/*) or of the Job controller (job-name, controller-uid, batch.kubernetes.io/*); remove it" $key) -}}
{{- end -}}
{{- end -}}
{{- $volumes := list -}}
{{- range $d.extraVolumes -}}
{{- $volumes = append $volumes .name -}}
{{- end -}}
{{- range $d.extraVolumeMounts -}}
{{- if not (has .name $volumes) -}}
{{- fail (printf "syncJob.defaults.extraVolumeMounts mounts volume %q at %s, but syncJob.defaults.extraVolumes has no volume of that name" .name .mountPath) -}}
{{- end -}}
{{- end -}}
{{- $set := dict -}}
{{- range $key, $value := .Values.syncJob.defaults -}}
{{- if $value -}}
{{- $_ := set $set $key $value -}}
{{- end -}}
{{- end -}}
{{- if $set -}}
{{- toJson $set -}}
{{- end -}}
{{- end -}}

{{/* Cross-field checks the JSON schema cannot express, with messages a person can act on. */}}
{{- define "rostersync.validate" -}}
{{- if and (eq (toString .Values.controller.leaderElection) "false") (gt (int .Values.replicaCount) 1) -}}
{{- fail (printf "replicaCount is %d but controller.leaderElection is false: two controllers would both act. Set controller.leaderElection to auto (or true), or replicaCount to 1." (int .Values.replicaCount)) -}}
{{- end -}}
{{- $c := .Values.controller -}}
{{- if ge (int $c.leaseRenewDeadlineSeconds) (int $c.leaseDurationSeconds) -}}
{{- fail (printf "controller.leaseRenewDeadlineSeconds (%d) must be shorter than controller.leaseDurationSeconds (%d): the leader must stop acting before its Lease can expire for the other replicas" (int $c.leaseRenewDeadlineSeconds) (int $c.leaseDurationSeconds)) -}}
{{- end -}}
{{- if ge (int $c.leaseRetryPeriodSeconds) (int $c.leaseRenewDeadlineSeconds) -}}
{{- fail (printf "controller.leaseRetryPeriodSeconds (%d) must be shorter than controller.leaseRenewDeadlineSeconds (%d), so that a failed renewal is tried again before the deadline" (int $c.leaseRetryPeriodSeconds) (int $c.leaseRenewDeadlineSeconds)) -}}
{{- end -}}
{{- end -}}

{{/*
The controller's rules in the namespaces it watches: exactly the calls the controller makes
(least privilege; docs/security.md explains each, and tests/helm.rs checks them against the list of
what the controller needs). Nothing can write a custom resource's spec.
*/}}
{{- define "rostersync.controllerRules" -}}
# The three kinds are watched (list, watch); a SyncSchedule's RosterConnection is also read directly.
- apiGroups: [rostersync.io]
  resources: [rosterconnections]
  verbs: [get, list, watch]
- apiGroups: [rostersync.io]
  resources: [syncschedules, journeypolicies]
  verbs: [list, watch]
# Status is written with server-side apply (a PATCH of /status).
- apiGroups: [rostersync.io]
  resources: [rosterconnections/status, syncschedules/status, journeypolicies/status]
  verbs: [patch]
# Sync Jobs: watched, created per run, marked reported when finished (patch), pruned (delete).
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create, delete, list, patch, watch]
# Credentials Secrets (RosterConnection.spec.credentialsSecretRef), re-verified when they change.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
{{- if eq (include "rostersync.databaseTenancy" .) "dedicated" }}
# Dedicated tenancy: each RosterConnection's database credential Secret (`<name>-database`),
# written with server-side apply (create cannot be limited to names).
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, patch]
{{- end }}
# The offboarding finalizer on RosterConnections (a merge patch of metadata.finalizers).
- apiGroups: [rostersync.io]
  resources: [rosterconnections]
  verbs: [patch]
# Events (events.k8s.io/v1); a repeated Event is patched into a series.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- if .Values.ui.enabled }}
# The status UI (src/ui/auth.rs): who a caller is (TokenReview) and whether they may get a
# district's RosterConnection (SubjectAccessReview). Cluster-scoped: with watch.namespaces the
# chart also binds them cluster-wide (ui-rbac.yaml).
- apiGroups: [authentication.k8s.io]
  resources: [tokenreviews]
  verbs: [create]
- apiGroups: [authorization.k8s.io]
  resources: [subjectaccessreviews]
  verbs: [create]
{{- end }}
{{- end -}}
