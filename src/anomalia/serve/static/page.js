// the threshold page
