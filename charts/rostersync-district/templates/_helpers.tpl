{{/*
The name of the RosterConnection, SyncSchedule and JourneyPolicy (and the base of the credentials
Secret's default name): `fullnameOverride`, else `name`, else the release name.
*/}}
{{- define "district.name" -}}
{{- .Values.fullnameOverride | default .Values.name | default .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The chart's name in `app.kubernetes.io/name` (`nameOverride` replaces it). */}}
{{- define "district.chartName" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "district.secretName" -}}
{{- default (printf "%s-clever" (include "district.name" .)) .Values.credentials.secretName -}}
{{- end -}}

{{/*
Labels with exactly one `app.kubernetes.io/component`. Call with (list . "COMPONENT"): `district`
(the three custom resources), `credentials`, `database` (the Secrets) or `sync-job` (what the sync
Jobs run as). The user's `labels` are added but never replace these.
*/}}
{{- define "district.labels" -}}
{{- $ctx := index . 0 -}}
{{- $own := dict
  "helm.sh/chart" (printf "%s-%s" $ctx.Chart.Name $ctx.Chart.Version | replace "+" "_")
  "app.kubernetes.io/name" (include "district.chartName" $ctx)
  "app.kubernetes.io/instance" $ctx.Release.Name
  "app.kubernetes.io/managed-by" $ctx.Release.Service
  "app.kubernetes.io/part-of" "rostersync"
  "app.kubernetes.io/component" (index . 1) -}}
{{- toYaml (merge $own $ctx.Values.labels) -}}
{{- end -}}

{{- define "district.metadata" -}}
name: {{ include "district.name" . }}
namespace: {{ .Release.Namespace }}
labels:
  {{- include "district.labels" (list . "district") | nindent 2 }}
{{- with .Values.annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Cross-field checks, with the setup guide's wording. */}}
{{- define "district.validate" -}}
{{- $s := .Values.schedule -}}
{{- if and (eq $s.frequency "Weekly") (not $s.dayOfWeek) -}}
{{- fail "schedule.dayOfWeek is required when schedule.frequency is Weekly (Monday..Sunday)" -}}
{{- end -}}
{{- if and (ne $s.frequency "Weekly") $s.dayOfWeek -}}
{{- fail (printf "schedule.dayOfWeek is only allowed when schedule.frequency is Weekly (it is %s): remove it" $s.frequency) -}}
{{- end -}}
{{- if and (eq $s.frequency "Monthly") (not $s.dayOfMonth) -}}
{{- fail "schedule.dayOfMonth is required when schedule.frequency is Monthly (1..31)" -}}
{{- end -}}
{{- if and (ne $s.frequency "Monthly") $s.dayOfMonth -}}
{{- fail (printf "schedule.dayOfMonth is only allowed when schedule.frequency is Monthly (it is %s): remove it" $s.frequency) -}}
{{- end -}}
{{- if and .Values.settings.sendEmails (not .Values.settings.emailRecipients) -}}
{{- fail "settings.emailRecipients must list at least one address when settings.sendEmails is true" -}}
{{- end -}}
{{- if .Values.journey.enabled -}}
{{- if not (has .Values.journey.newChildJourney .Values.journey.licensedProducts) -}}
{{- fail (printf "journey.newChildJourney %q must be one of journey.licensedProducts %v: you can only assign products you hold licenses for" .Values.journey.newChildJourney .Values.journey.licensedProducts) -}}
{{- end -}}
{{- end -}}
{{- if .Values.credentials.create -}}
{{- if not (or .Values.credentials.token (and .Values.credentials.clientId .Values.credentials.clientSecret)) -}}
{{- fail "credentials.create is true: set credentials.token (a district token), or credentials.clientId and credentials.clientSecret" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.database.createSecret (not .Values.database.url) -}}
{{- fail "database.createSecret is true: set database.url (postgres://...)" -}}
{{- end -}}
{{- end -}}

{{/* The Clever district id: districtId itself, or the district_id= parameter of a whole instant
login link pasted into districtId. */}}
{{- define "district.districtId" -}}
{{- $v := .Values.districtId | trim -}}
{{- if regexMatch "[?&]district_id=[0-9a-fA-F]{24}" $v -}}
{{- regexReplaceAll "^.*[?&]district_id=([0-9a-fA-F]{24}).*$" $v "${1}" | lower -}}
{{- else -}}
{{- $v -}}
{{- end -}}
{{- end -}}
