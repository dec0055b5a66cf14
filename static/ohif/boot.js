// What OHIF's index.html sets in inline scripts, which the advanced viewer's Content-Security-Policy does
// not allow: where its files are (the site root) and the helper its bundle uses for dynamic imports.
window.PUBLIC_URL = "/";
window.browserImportFunction = function (name) { return import(name); };
