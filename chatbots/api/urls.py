from __future__ import annotations

from django.urls import path

from chatbots.api import chat_views, privacy_views, views

urlpatterns = [
    path("privacy/requests/", privacy_views.SubjectRequestCreateView.as_view(), name="subject-request-list"),
    path(
        "privacy/requests/<int:request_id>/",
        privacy_views.SubjectRequestDetailView.as_view(),
        name="subject-request-detail",
    ),
    path(
        "privacy/download/<str:token>/",
        privacy_views.SubjectRequestDownloadView.as_view(),
        name="subject-request-download",
    ),
    path("bots/<str:public_id>/messages", chat_views.message_create, name="chat-message-create"),
    path("conversations/", views.ConversationListView.as_view(), name="conversation-list"),
    path("conversations/export/", views.ConversationExportView.as_view(), name="conversation-export"),
    path("exports/<int:export_id>/", views.ExportDetailView.as_view(), name="conversation-export-detail"),
    path(
        "exports/download/<str:token>/",
        views.ExportDownloadView.as_view(),
        name="conversation-export-download",
    ),
    path(
        "conversations/<uuid:conversation_id>/",
        views.ConversationDetailView.as_view(),
        name="conversation-detail",
    ),
    path(
        "conversations/<uuid:conversation_id>/messages",
        views.ConversationMessagesView.as_view(),
        name="chat-conversation-messages",
    ),
    path(
        "messages/<int:message_id>/feedback",
        views.MessageFeedbackView.as_view(),
        name="chat-message-feedback",
    ),
]
