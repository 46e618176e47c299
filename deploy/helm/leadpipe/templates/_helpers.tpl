{{/* Names and labels shared by every template. */}}
{{- define "leadpipe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "leadpipe.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "leadpipe.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "leadpipe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: pass (dict "ctx" $ "component" "worker"). */}}
{{- define "leadpipe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "leadpipe.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "leadpipe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "leadpipe.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "leadpipe.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The non-secret settings, validated: only LEADPIPE_* names, nulls left out. */}}
{{- define "leadpipe.configData" -}}
{{- range $name, $value := .Values.config }}
{{- if not (hasPrefix "LEADPIPE_" $name) }}
{{- fail (printf "config.%s: every key must be a LEADPIPE_* setting" $name) }}
{{- end }}
{{- if not (kindIs "invalid" $value) }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* env entries of the secret settings, all from the one existingSecret. */}}
{{- define "leadpipe.secretEnv" -}}
{{- $secret := required "existingSecret: name the Secret that holds the database URL, pepper, KEK and tokens" .Values.existingSecret -}}
{{- range $name, $ref := .Values.secretEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ required (printf "secretEnv.%s.key is required" $name) $ref.key }}
      optional: {{ default false $ref.optional }}
{{- end }}
{{- end -}}

{{/* Writable paths under a read-only root file system. */}}
{{- define "leadpipe.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /data
{{- end -}}

{{- define "leadpipe.commonEnv" -}}
- name: LEADPIPE_HOME
  value: /data/leadpipe
- name: HOME
  value: /data
{{- end -}}

{{/* The hook Job's whole environment: ConfigMap values inlined, plus the common and secret entries. */}}
{{- define "leadpipe.migrateEnv" -}}
{{- range $name, $value := .Values.config }}
{{- if not (kindIs "invalid" $value) }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{ include "leadpipe.commonEnv" . | trim }}
{{ include "leadpipe.secretEnv" . | trim }}
{{- end -}}

{{/* Where the workers, the API (review show) and the CLI reach the spam engine of the release. */}}
{{- define "leadpipe.spamEnv" -}}
{{- if .Values.spamEngine.enabled }}
{{- $host := printf "%s-spam-engine" (include "leadpipe.fullname" .) }}
- name: LEADPIPE_SPAM_ENGINE_ENABLED
  value: "true"
- name: LEADPIPE_SPAM_ENGINE_URL
  value: {{ printf "http://%s:11333" $host | quote }}
- name: LEADPIPE_SPAM_ENGINE_CONTROLLER_URL
  value: {{ printf "http://%s:11334" $host | quote }}
- name: LEADPIPE_SPAM_ENGINE_REDIS_HOST
  value: {{ $host | quote }}
- name: LEADPIPE_SPAM_ENGINE_REDIS_PORT
  value: "6379"
- name: LEADPIPE_SPAM_ENGINE_TIMEOUT_S
  value: {{ .Values.spamEngine.timeoutSeconds | quote }}
- name: LEADPIPE_SPAM_ENGINE_CONCURRENCY
  value: {{ .Values.spamEngine.concurrency | quote }}
{{- else }}
- name: LEADPIPE_SPAM_ENGINE_ENABLED
  value: "false"
{{- end }}
{{- end -}}
