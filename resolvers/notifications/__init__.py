"""Notifications: every notifiable event, grouped, with preferences, live delivery and Web Push.

  model     types, levels, the Event a cause produces, the Notification record and its codec
  causes    the events of each cause, as outbox jobs for the cause's `jobs=` (plain ids in)
  record    the jobs: recording an event into its group, retracting an undone one
  hooks     causes wired through another domain's hook list (caption mentions on publish)
  prefs     per-type levels and push switches, "pause all push"
  reads     the viewer's list, unread count, read marker
docs/notifications.md states the guarantees.
"""
