{{/* Chart name, truncated to a DNS label. */}}
{{- define "spendsignoff.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. Per-service objects append "-<service>", so this keeps room for
the longest suffix ("-executor") inside 63 characters.
*/}}
{{- define "spendsignoff.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "spendsignoff.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels. */}}
{{- define "spendsignoff.labels" -}}
helm.sh/chart: {{ include "spendsignoff.chart" . }}
app.kubernetes.io/name: {{ include "spendsignoff.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: spendsignoff
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels for one service: include "spendsignoff.selectorLabels" (dict "ctx" $ "component" "ledger") */}}
{{- define "spendsignoff.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spendsignoff.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Full labels for one service's objects. */}}
{{- define "spendsignoff.componentLabels" -}}
{{ include "spendsignoff.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "spendsignoff.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "spendsignoff.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "spendsignoff.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Configuration shared by every `spend serve <service>` (env vars, prefix SPEND__, "__" between
sections), as ConfigMap data.
*/}}
{{- define "spendsignoff.commonConfig" -}}
RUST_LOG: {{ .Values.log.level | quote }}
SPEND__LOG__FORMAT: {{ .Values.log.format | quote }}
SPEND__NATS__STREAM: {{ .Values.nats.stream | quote }}
SPEND__LEDGER__STREAM: {{ .Values.nats.ledgerStream | quote }}
SPEND__NATS__SUBJECT_PREFIX: {{ .Values.nats.subjectPrefix | quote }}
SPEND__KMS__KEY_ID: {{ .Values.kms.keyId | quote }}
SPEND__KMS__REGION: {{ .Values.kms.region | quote }}
{{- with .Values.kms.endpoint }}
SPEND__KMS__ENDPOINT: {{ . | quote }}
{{- end }}
{{- end }}

{{/* Pod and container security settings (restricted Pod Security Standard). */}}
{{- define "spendsignoff.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "spendsignoff.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/*
A service's NATS login, as container env: the URL without credentials, its own user (k8s/nats/auth.conf),
the password from its own Secret, and its own inbox prefix (the only replies the user may subscribe to).
  include "spendsignoff.natsEnv" (dict "ctx" $ "user" "ledger" "secret" .Values.nats.auth.ledger)
*/}}
{{- define "spendsignoff.natsEnv" -}}
- name: SPEND__NATS__URL
  value: {{ .ctx.Values.nats.url | quote }}
- name: SPEND__NATS__USER
  value: {{ .user | quote }}
- name: SPEND__NATS__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .secret.existingSecret }}
      key: {{ .secret.key }}
- name: SPEND__NATS__INBOX_PREFIX
  value: {{ printf "_INBOX_%s" .user | quote }}
{{- end }}
