-- The web app's deck list asks how many items are due per deck for one user.
CREATE INDEX study_items_user_due ON study_items (user_id, due);
