{{/* Chart name, truncated to the 63 characters Kubernetes allows. */}}
{{- define "session-backend.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart unless the release already names the chart. */}}
{{- define "session-backend.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "session-backend.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object. */}}
{{- define "session-backend.labels" -}}
helm.sh/chart: {{ include "session-backend.chart" . }}
app.kubernetes.io/part-of: {{ include "session-backend.name" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector of the API pods. */}}
{{- define "session-backend.selectorLabels" -}}
app.kubernetes.io/name: {{ include "session-backend.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- end }}

{{/* Selector of the PostgreSQL pod. */}}
{{- define "session-backend.postgresql.selectorLabels" -}}
app.kubernetes.io/name: {{ include "session-backend.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: postgresql
{{- end }}

{{- define "session-backend.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "session-backend.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "session-backend.image" -}}
{{- $image := .Values.sessionBackend.image -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) }}
{{- end }}

{{- define "session-backend.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "session-backend.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Database coordinates, in-cluster or external. */}}
{{- define "session-backend.database.host" -}}
{{- if .Values.postgresql.enabled }}
{{- include "session-backend.postgresql.fullname" . }}
{{- else }}
{{- required "externalPostgresql.host is required when postgresql.enabled is false" .Values.externalPostgresql.host }}
{{- end }}
{{- end }}

{{- define "session-backend.database.port" -}}
{{- if .Values.postgresql.enabled }}5432{{ else }}{{ .Values.externalPostgresql.port }}{{ end }}
{{- end }}

{{- define "session-backend.database.name" -}}
{{- if .Values.postgresql.enabled }}{{ .Values.postgresql.auth.database }}{{ else }}{{ .Values.externalPostgresql.database }}{{ end }}
{{- end }}

{{- define "session-backend.database.user" -}}
{{- if .Values.postgresql.enabled }}{{ .Values.postgresql.auth.username }}{{ else }}{{ .Values.externalPostgresql.username }}{{ end }}
{{- end }}

{{/* The Secret holding the database password, and its key. */}}
{{- define "session-backend.database.secretName" -}}
{{- if and .Values.postgresql.enabled .Values.postgresql.auth.existingSecret }}
{{- .Values.postgresql.auth.existingSecret }}
{{- else if and (not .Values.postgresql.enabled) .Values.externalPostgresql.existingSecret }}
{{- .Values.externalPostgresql.existingSecret }}
{{- else }}
{{- include "session-backend.fullname" . }}
{{- end }}
{{- end }}

{{- define "session-backend.database.secretKey" -}}
{{- if and .Values.postgresql.enabled .Values.postgresql.auth.existingSecret }}
{{- .Values.postgresql.auth.secretKeys.passwordKey }}
{{- else if and (not .Values.postgresql.enabled) .Values.externalPostgresql.existingSecret }}
{{- .Values.externalPostgresql.existingSecretPasswordKey }}
{{- else }}password{{ end }}
{{- end }}

{{/* Whether this chart creates the Secret (no existingSecret in use). */}}
{{- define "session-backend.createSecret" -}}
{{- if .Values.postgresql.enabled }}
{{- if not .Values.postgresql.auth.existingSecret }}true{{ end }}
{{- else if not .Values.externalPostgresql.existingSecret }}true{{ end }}
{{- end }}

{{/* Environment the binary reads: the earlier service's POSTGRES_* variables,
     the password always from a Secret. */}}
{{- define "session-backend.databaseEnv" -}}
- name: POSTGRES_HOST
  value: {{ include "session-backend.database.host" . | quote }}
- name: POSTGRES_PORT
  value: {{ include "session-backend.database.port" . | quote }}
{{ include "session-backend.databaseLoginEnv" . }}
{{- end }}

{{/* The API pods' database: the pooler when there is one (in transaction
     mode, with the database itself for the start-up schema check), else
     the database. */}}
{{- define "session-backend.apiDatabaseEnv" -}}
{{- if .Values.pooler.enabled }}
- name: POSTGRES_HOST
  value: {{ required "pooler.host is required when pooler.enabled is true" .Values.pooler.host | quote }}
- name: POSTGRES_PORT
  value: {{ .Values.pooler.port | quote }}
- name: SESSION_BACKEND_DATABASE__POOLER
  value: transaction
- name: SESSION_BACKEND_DATABASE__POSTGRES__DIRECT_HOST
  value: {{ include "session-backend.database.host" . | quote }}
- name: SESSION_BACKEND_DATABASE__POSTGRES__DIRECT_PORT
  value: {{ include "session-backend.database.port" . | quote }}
{{ include "session-backend.databaseLoginEnv" . }}
{{- else }}
{{- include "session-backend.databaseEnv" . }}
{{- end }}
{{- end }}

{{/* Which database, as whom. */}}
{{- define "session-backend.databaseLoginEnv" -}}
- name: POSTGRES_DB
  value: {{ include "session-backend.database.name" . | quote }}
- name: POSTGRES_USER
  value: {{ include "session-backend.database.user" . | quote }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "session-backend.database.secretName" . }}
      key: {{ include "session-backend.database.secretKey" . }}
{{- end }}

{{/* Fails the render when the API pods' pools cannot all connect to the
     in-chart PostgreSQL: pods at most (the HPA's maximum or the replica
     count, plus one while rolling) x (pool size + the one connection a pod
     migrates on at start), plus 8 kept for the superuser and for backups,
     must fit in its max_connections. Behind a pooler the pools are the
     pooler's: its server connections, plus each pod's one direct one. */}}
{{- define "session-backend.checkConnections" -}}
{{- if .Values.postgresql.enabled }}
{{- $pods := .Values.sessionBackend.replicaCount }}
{{- if .Values.autoscaling.enabled }}{{ $pods = .Values.autoscaling.maxReplicas }}{{ end }}
{{- if .Values.pooler.enabled }}
{{- $needed := add (add $pods 1) .Values.pooler.maxServerConnections 8 }}
{{- if gt (int $needed) (int .Values.postgresql.primary.maxConnections) }}
{{- fail (printf "%d pods x 1 direct connection + pooler.maxServerConnections %d (+8 reserved) = %d connections exceed postgresql.primary.maxConnections %d" (add $pods 1) (int .Values.pooler.maxServerConnections) (int $needed) (int .Values.postgresql.primary.maxConnections)) }}
{{- end }}
{{- else }}
{{- $needed := add (mul (add $pods 1) (add .Values.sessionBackend.config.maxConnections 1)) 8 }}
{{- if gt (int $needed) (int .Values.postgresql.primary.maxConnections) }}
{{- fail (printf "%d pods x (sessionBackend.config.maxConnections %d + 1) (+8 reserved) = %d connections exceed postgresql.primary.maxConnections %d: lower the pool, the replicas or raise max_connections, or put a pooler in front (pooler.enabled)" (add $pods 1) (int .Values.sessionBackend.config.maxConnections) (int $needed) (int .Values.postgresql.primary.maxConnections)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Fails the render when API keys are required and no Secret names them. */}}
{{- define "session-backend.checkAuth" -}}
{{- if and .Values.auth.required (not .Values.auth.existingSecret) }}
{{- fail "auth.existingSecret is required (auth.required is true): create a Secret holding a keys file of `TENANT HASH` lines (session-backend keys new --tenant T) and set auth.existingSecret to its name" }}
{{- end }}
{{- end }}
