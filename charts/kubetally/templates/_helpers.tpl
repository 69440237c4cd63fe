{{/* Chart name. */}}
{{- define "kubetally.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified app name (release-aware). */}}
{{- define "kubetally.fullname" -}}
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

{{- define "kubetally.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels common to every object. */}}
{{- define "kubetally.labels" -}}
helm.sh/chart: {{ include "kubetally.chart" . }}
app.kubernetes.io/part-of: kubetally
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of the exporter (the aggregator discovers exporters by these). */}}
{{- define "kubetally.exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubetally.name" . }}-exporter
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: exporter
{{- end -}}

{{/* The exporter's selector as a label-selector string (aggregator --kube-selector). */}}
{{- define "kubetally.exporter.selector" -}}
app.kubernetes.io/name={{ include "kubetally.name" . }}-exporter,app.kubernetes.io/instance={{ .Release.Name }}
{{- end -}}

{{- define "kubetally.server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubetally.name" . }}-server
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "kubetally.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "kubetally.exporter.serviceAccountName" -}}
{{- if .Values.exporter.serviceAccount.create -}}
{{- default (printf "%s-exporter" (include "kubetally.fullname" .)) .Values.exporter.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.exporter.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kubetally.aggregator.serviceAccountName" -}}
{{- if .Values.aggregator.serviceAccount.create -}}
{{- default (printf "%s-aggregator" (include "kubetally.fullname" .)) .Values.aggregator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.aggregator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret holding the API token ("" when auth is off). */}}
{{- define "kubetally.api.tokenSecret" -}}
{{- if .Values.api.existingSecret -}}
{{- .Values.api.existingSecret -}}
{{- else if .Values.api.token -}}
{{- printf "%s-api-token" (include "kubetally.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "kubetally.api.tokenKey" -}}
{{- if .Values.api.existingSecret -}}{{ .Values.api.existingSecretKey }}{{- else -}}token{{- end -}}
{{- end -}}

{{/* prometheus.io annotations (only without the Prometheus Operator). Pass (list $ port). */}}
{{- define "kubetally.scrapeAnnotations" -}}
{{- $root := index . 0 -}}
{{- if and $root.Values.prometheusAnnotations.enabled (not $root.Values.prometheusOperator.enabled) }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ index . 1 | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}
