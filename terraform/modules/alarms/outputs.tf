output "alarm_names" {
  description = "Names of every alarm, by kind and label."
  value = {
    iterator_age = { for label, alarm in aws_cloudwatch_metric_alarm.iterator_age : label => alarm.alarm_name }
    errors       = { for label, alarm in aws_cloudwatch_metric_alarm.errors : label => alarm.alarm_name }
    throttles    = { for label, alarm in aws_cloudwatch_metric_alarm.throttles : label => alarm.alarm_name }
    dead_letters = { for label, alarm in aws_cloudwatch_metric_alarm.dead_letters : label => alarm.alarm_name }
    queue_age    = { for label, alarm in aws_cloudwatch_metric_alarm.queue_age : label => alarm.alarm_name }
  }
}
