variable "name_prefix" {
  type        = string
  description = "Prefix of the alarm names (ferry-<stage>)."
}

variable "functions" {
  type        = map(string)
  description = "Functions to watch for Errors and Throttles: label => function name."
  default     = {}
}

variable "stream_functions" {
  type        = map(string)
  description = "Functions fed by stream event-source mappings, watched for IteratorAge: label => function name."
  default     = {}
}

variable "dead_letter_queues" {
  type        = map(string)
  description = "Dead-letter and on-failure queues that must stay empty: label => queue name."
  default     = {}
}

variable "lag_queues" {
  type        = map(string)
  description = "Work queues whose oldest message measures replication lag: label => queue name."
  default     = {}
}

variable "iterator_age_alarm_seconds" {
  type        = number
  description = "Alarm when a stream function's IteratorAge (or a work queue's oldest message) exceeds this many seconds."
  default     = 300
}

variable "alarm_actions" {
  type        = list(string)
  description = "ARNs notified when an alarm fires and when it recovers (e.g. an SNS topic)."
  default     = []
}

variable "tags" {
  type        = map(string)
  description = "Tags for the alarms."
  default     = {}
}
